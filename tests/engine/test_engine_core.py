import pytest

from hwemu.engine import CpuTimeline, Engine, EventQueue, Sleep, WaitQueue


def test_queue_orders_by_time_priority_sequence():
    q = EventQueue()
    out = []
    q.schedule(20, out.append, "t20")
    q.schedule(10, out.append, "t10-p1", priority=1)
    q.schedule(10, out.append, "t10-p0-a", priority=0)
    q.schedule(10, out.append, "t10-p0-b", priority=0)
    assert q.run() == 4
    assert out == ["t10-p0-a", "t10-p0-b", "t10-p1", "t20"]
    assert q.now_ps == 20


def test_queue_cancel_run_until_and_past():
    q = EventQueue()
    out = []
    e = q.schedule(5, out.append, "x")
    q.schedule(7, out.append, "y")
    q.schedule(50, out.append, "z")
    e.cancel()
    assert q.run_until(10) == 1
    assert out == ["y"] and q.now_ps == 10
    assert q.peek_time() == 50
    with pytest.raises(ValueError):
        q.schedule(9, out.append, "past")
    with pytest.raises(TypeError):
        q.schedule(11.5, out.append, "float time")
    assert len(q) == 1


def test_cpu_timeline_serialises_work():
    c = CpuTimeline(2)
    assert c.occupy(0, 100, 50) == (100, 150)
    assert c.occupy(0, 120, 10) == (150, 160)   # waits for the CPU
    assert c.occupy(1, 120, 10) == (120, 130)   # other CPU is free
    assert c.busy_ps == [60, 10]
    with pytest.raises(ValueError):
        c.occupy(2, 0, 1)


def test_processes_share_a_cpu_and_sleep_frees_it():
    eng = Engine(2)
    marks = []

    def worker(name, work):
        yield work
        marks.append((name, eng.now_ps))

    def sleeper():
        yield Sleep(1000)
        marks.append(("sleeper", eng.now_ps))
        yield 10
        marks.append(("sleeper-done", eng.now_ps))

    eng.spawn(worker("a", 300), cpu=0)
    eng.spawn(worker("b", 200), cpu=0)
    eng.spawn(worker("c", 200), cpu=1)
    eng.spawn(sleeper(), cpu=0)
    eng.run()
    assert ("a", 300) in marks and ("b", 500) in marks and ("c", 200) in marks
    # The sleep did not occupy CPU 0; its 10 ps of work starts at 1000.
    assert ("sleeper", 1000) in marks and ("sleeper-done", 1010) in marks


def test_waitqueue_and_join():
    eng = Engine(1)
    wq = WaitQueue("w")
    got = []

    def waiter():
        v = yield wq
        got.append((v, eng.now_ps))
        return "finished"

    def waker():
        yield Sleep(500)
        wq.wake(eng, "go")

    p = eng.spawn(waiter(), cpu=0)

    def joiner():
        v = yield p
        got.append((v, eng.now_ps))

    eng.spawn(waker())
    eng.spawn(joiner())
    eng.run()
    assert got == [("go", 500), ("finished", 500)]
    assert p.done and p.start_ps == 0 and p.end_ps == 500


def test_run_process_detects_deadlock():
    eng = Engine(1)

    def stuck():
        yield WaitQueue("never")

    p = eng.spawn(stuck(), cpu=0)
    with pytest.raises(RuntimeError):
        eng.run_process(p)


def test_same_inputs_same_order():
    def trace():
        eng = Engine(2)
        log = []

        def w(i):
            yield (i * 37) % 11
            log.append((i, eng.now_ps))
        for i in range(20):
            eng.spawn(w(i), cpu=i % 2)
        eng.run()
        return log
    assert trace() == trace()
