/* hwtrace: a Valgrind tool that streams every memory event of a program as compact binary
   records into a pipe, for `hwemu trace record`.

   The events are exactly those cachegrind (Valgrind 3.19, --cache-sim=yes) simulates, produced
   by the same instrumentation rules as cachegrind/cg_main.c:

     - one instruction fetch (I) per IMark, of the instruction's length (a zero length, which
       VEX gives for an undecodable instruction, counts as VG_MIN_INSTR_SZB);
     - a load (L) for every WrTmp of a Load expression and for every guarded load (LoadG),
       of the loaded (not widened) type's size;
     - a store (S) for every Store and guarded store (StoreG);
     - for dirty helpers that touch memory, a load for Ifx_Read/Ifx_Modify and a store for
       Ifx_Write/Ifx_Modify, of the helper's declared size;
     - CAS as a load then a store of the (doubled, for double CAS) data size; LL as a load and
       SC as a store;
     - a store that directly follows a load of the same address expression and size of the same
       instruction, in the tool's pending-event queue, becomes a single modify (M). The queue is
       flushed at exactly the places cachegrind flushes its own (side exits, guarded accesses,
       after LL, end of superblock), so merges happen exactly when cachegrind's do.

   Unlike cachegrind, sizes are not clamped to the minimum cache line size: the consumer of the
   trace (a cache simulator) does that, so the trace keeps the true access size.

   Output: 12-byte little-endian records {u64 addr; u32 info} with info = kind | size << 8.
   kind 0..3 = I, L, S, M. kind 0xFF is a thread switch (addr = Valgrind thread id, 1 = main
   thread); kind 0xFE ends the stream (addr = number of memory records written); kind 0xFD
   precedes an execve (addr = records so far): if the exec succeeds the stream ends there
   without an 0xFE record. Guarded
   accesses whose guard is false are not executed and produce no record, as in cachegrind.

   Data-only mode (--hwtrace-data-only=yes): no I records. The instructions are counted instead:
   at every place where the full mode would call the I helper, the instructions of that
   flush group are attributed to the next data event of the group (a constant passed to its
   helper), and those after the group's last data event are added to a counter in memory by
   inline IR (a load, an add, a store: no helper call). Since the counting happens at exactly
   the full mode's flush points, an instruction is counted if and only if its I record would
   have been written. A data record's info = kind | size << 8 | n << 24, where n (0..255) =
   instructions since the previous data record of the thread, including its own; a larger
   count goes first as a count record, kind 0xFC, addr = count (for the current thread, added
   to its next data record). The counter is also flushed as a count record before a thread
   switch, an exec marker and the end record, so no instruction is lost or given to another
   thread.

   Options: --hwtrace-fd=N  file descriptor (inherited from the parent) to write the stream to.
   The tool moves it out of the client's reach at start-up; a forked child stops writing.
   --hwtrace-data-only=yes|no  (default no) the data-only mode above. */

#include "pub_tool_basics.h"
#include "pub_tool_tooliface.h"
#include "pub_tool_libcassert.h"
#include "pub_tool_libcbase.h"
#include "pub_tool_libcfile.h"
#include "pub_tool_libcprint.h"
#include "pub_tool_libcproc.h"
#include "pub_tool_machine.h"
#include "pub_tool_options.h"
#include "pub_tool_threadstate.h"
#include "pub_tool_vkiscnums.h"

/* Not in the public tool headers, but exported by libcoregrind: dup a descriptor into the
   range Valgrind reserves for itself (out of the client's reach), close-on-exec. */
extern Int VG_(safe_fd) ( Int oldfd );

#define KIND_I 0
#define KIND_L 1
#define KIND_S 2
#define KIND_M 3
#define KIND_THREAD 0xFF
#define KIND_END    0xFE
#define KIND_EXEC   0xFD
#define KIND_COUNT  0xFC

/* ---------------- output buffer ---------------- */

#define BUF_RECS 8192              /* 96 KiB per write */
static UInt   buf[BUF_RECS * 3];
static Int    buf_used = 0;         /* records */
static Int    out_fd = -1;
static Long   clo_fd = -1;
static ULong  n_records = 0;
static ThreadId cur_tid = VG_INVALID_THREADID;
static Bool   clo_data_only = False;
/* data-only mode: instructions of the running thread not yet given to a record (updated by
   inline IR as well as by the helpers below) */
static ULong  pending_insts = 0;

static void flush_buf(void)
{
   const UChar* p = (const UChar*)buf;
   Int left = buf_used * 12;
   buf_used = 0;
   while (left > 0 && out_fd >= 0) {
      Int n = VG_(write)(out_fd, p, left);
      if (n <= 0) {
         VG_(umsg)("hwtrace: cannot write to the trace pipe; tracing stops here\n");
         out_fd = -1;
         return;
      }
      p += n;
      left -= n;
   }
}

static inline void emit(ULong addr, UInt info)
{
   UInt* r;
   if (UNLIKELY(buf_used == BUF_RECS))
      flush_buf();
   r = &buf[buf_used * 3];
   r[0] = (UInt)addr;
   r[1] = (UInt)(addr >> 32);
   r[2] = info;
   buf_used++;
}

static VG_REGPARM(2) void trace_instr(Addr addr, UWord size)
{
   n_records++;
   emit(addr, KIND_I | ((UInt)size << 8));
}

static VG_REGPARM(2) void trace_load(Addr addr, UWord size)
{
   n_records++;
   emit(addr, KIND_L | ((UInt)size << 8));
}

static VG_REGPARM(2) void trace_store(Addr addr, UWord size)
{
   n_records++;
   emit(addr, KIND_S | ((UInt)size << 8));
}

static VG_REGPARM(2) void trace_modify(Addr addr, UWord size)
{
   n_records++;
   emit(addr, KIND_M | ((UInt)size << 8));
}

/* ---- data-only mode ---- */

static void flush_count(void)
{
   if (pending_insts) {
      emit(pending_insts, KIND_COUNT);
      pending_insts = 0;
   }
}

static inline void emit_data(Addr addr, UWord size, UWord n, UInt kind)
{
   ULong c = pending_insts + n;
   pending_insts = 0;
   n_records++;
   if (UNLIKELY(c > 255)) {
      emit(c, KIND_COUNT);
      c = 0;
   }
   emit(addr, kind | ((UInt)size << 8) | ((UInt)c << 24));
}

static VG_REGPARM(3) void trace_load_n(Addr addr, UWord size, UWord n)
{
   emit_data(addr, size, n, KIND_L);
}

static VG_REGPARM(3) void trace_store_n(Addr addr, UWord size, UWord n)
{
   emit_data(addr, size, n, KIND_S);
}

static VG_REGPARM(3) void trace_modify_n(Addr addr, UWord size, UWord n)
{
   emit_data(addr, size, n, KIND_M);
}

static void on_start_client_code(ThreadId tid, ULong blocks)
{
   if (tid != cur_tid) {
      flush_count();   /* the previous thread's instructions (data-only mode) */
      cur_tid = tid;
      emit(tid, KIND_THREAD);
   }
}

static void on_pre_syscall(ThreadId tid, UInt syscallno, UWord* args, UInt nArgs)
{
   /* Valgrind does not follow an exec (no --trace-children): if it succeeds, the program is
      replaced and hw_fini never runs. Say where the trace ends, with the count so far; if
      the exec fails, tracing simply continues. */
   if (syscallno == __NR_execve || syscallno == __NR_execveat) {
      flush_count();
      emit(n_records, KIND_EXEC);
      flush_buf();
   }
}

static void on_post_syscall(ThreadId tid, UInt syscallno, UWord* args, UInt nArgs,
                            SysRes res)
{
}

static void on_fork_child(ThreadId tid)
{
   /* The child shares the parent's pipe: drop what the parent had buffered and stop. */
   buf_used = 0;
   pending_insts = 0;
   if (out_fd >= 0)
      VG_(close)(out_fd);
   out_fd = -1;
}

/* ---------------- instrumentation (mirrors cg_main.c) ---------------- */

typedef IRExpr IRAtom;

typedef enum { Ev_Ir, Ev_Dr, Ev_Dw, Ev_Dm } EventTag;

typedef struct {
   EventTag tag;
   Int      inum;     /* IMark number within the superblock (plays cg's inode role) */
   Addr     iaddr;    /* instruction address (Ev_Ir) */
   Int      isize;    /* instruction length (Ev_Ir) */
   Int      dsize;    /* data size (Ev_D*) */
   IRAtom*  ea;       /* data address expression (Ev_D*) */
} Event;

#define N_EVENTS 16

typedef struct {
   Event  events[N_EVENTS];
   Int    used;
   IRSB*  sbOut;
} State;

static void add_call(IRSB* sbOut, const HChar* name, void* fn, IRExpr* a1, IRExpr* a2,
                     IRExpr* guard)
{
   IRExpr** argv = mkIRExprVec_2(a1, a2);
   IRDirty* di = unsafeIRDirty_0_N(2, name, VG_(fnptr_to_fnentry)(fn), argv);
   if (guard)
      di->guard = guard;
   addStmtToIRSB(sbOut, IRStmt_Dirty(di));
}

static void add_call3(IRSB* sbOut, const HChar* name, void* fn, IRExpr* a1, Int a2, Int a3,
                      IRExpr* guard)
{
   IRExpr** argv = mkIRExprVec_3(a1, mkIRExpr_HWord(a2), mkIRExpr_HWord(a3));
   IRDirty* di = unsafeIRDirty_0_N(3, name, VG_(fnptr_to_fnentry)(fn), argv);
   if (guard)
      di->guard = guard;
   addStmtToIRSB(sbOut, IRStmt_Dirty(di));
}

/* pending_insts += n, inline (data-only mode) */
static void add_count(IRSB* sbOut, Int n)
{
   IRExpr* where = mkIRExpr_HWord((HWord)&pending_insts);
   IRTemp old = newIRTemp(sbOut->tyenv, Ity_I64);
   IRTemp new = newIRTemp(sbOut->tyenv, Ity_I64);
   addStmtToIRSB(sbOut, IRStmt_WrTmp(old, IRExpr_Load(Iend_LE, Ity_I64, where)));
   addStmtToIRSB(sbOut, IRStmt_WrTmp(new, IRExpr_Binop(Iop_Add64, IRExpr_RdTmp(old),
                                                       IRExpr_Const(IRConst_U64(n)))));
   addStmtToIRSB(sbOut, IRStmt_Store(Iend_LE, where, IRExpr_RdTmp(new)));
}

/* Data-only mode: the same flush group as flush_events, without I records. Each data event's
   helper gets the number of instructions of the group since the previous data event; those
   after the last one are added to pending_insts inline. */
static void flush_events_data_only(State* s)
{
   Int i, n_ir = 0;
   for (i = 0; i < s->used; i++) {
      Event* ev = &s->events[i];
      if (ev->tag != Ev_Ir)
         tl_assert(ev->dsize <= 0xFFFF);
      switch (ev->tag) {
         case Ev_Ir:
            n_ir++;
            break;
         case Ev_Dr:
            add_call3(s->sbOut, "trace_load_n", trace_load_n, ev->ea, ev->dsize, n_ir, NULL);
            n_ir = 0;
            break;
         case Ev_Dw:
            add_call3(s->sbOut, "trace_store_n", trace_store_n, ev->ea, ev->dsize, n_ir, NULL);
            n_ir = 0;
            break;
         case Ev_Dm:
            add_call3(s->sbOut, "trace_modify_n", trace_modify_n, ev->ea, ev->dsize, n_ir, NULL);
            n_ir = 0;
            break;
         default:
            tl_assert(0);
      }
   }
   if (n_ir)
      add_count(s->sbOut, n_ir);
   s->used = 0;
}

static void flush_events(State* s)
{
   Int i;
   if (clo_data_only) {
      flush_events_data_only(s);
      return;
   }
   for (i = 0; i < s->used; i++) {
      Event* ev = &s->events[i];
      switch (ev->tag) {
         case Ev_Ir:
            add_call(s->sbOut, "trace_instr", trace_instr,
                     mkIRExpr_HWord(ev->iaddr), mkIRExpr_HWord(ev->isize), NULL);
            break;
         case Ev_Dr:
            add_call(s->sbOut, "trace_load", trace_load,
                     ev->ea, mkIRExpr_HWord(ev->dsize), NULL);
            break;
         case Ev_Dw:
            add_call(s->sbOut, "trace_store", trace_store,
                     ev->ea, mkIRExpr_HWord(ev->dsize), NULL);
            break;
         case Ev_Dm:
            add_call(s->sbOut, "trace_modify", trace_modify,
                     ev->ea, mkIRExpr_HWord(ev->dsize), NULL);
            break;
         default:
            tl_assert(0);
      }
   }
   s->used = 0;
}

static Event* new_event(State* s)
{
   if (s->used == N_EVENTS)
      flush_events(s);
   tl_assert(s->used >= 0 && s->used < N_EVENTS);
   return &s->events[s->used++];
}

static void add_Ir(State* s, Int inum, Addr iaddr, Int isize)
{
   Event* ev = new_event(s);
   ev->tag = Ev_Ir; ev->inum = inum; ev->iaddr = iaddr; ev->isize = isize; ev->dsize = 0; ev->ea = NULL;
}

static void add_Dr(State* s, Int inum, Int size, IRAtom* ea)
{
   Event* ev;
   tl_assert(isIRAtom(ea));
   tl_assert(size >= 1);
   ev = new_event(s);
   ev->tag = Ev_Dr; ev->inum = inum; ev->iaddr = 0; ev->isize = 0; ev->dsize = size; ev->ea = ea;
}

static void add_Dw(State* s, Int inum, Int size, IRAtom* ea)
{
   Event* ev;
   tl_assert(isIRAtom(ea));
   tl_assert(size >= 1);
   /* A write right after a read of the same expression and size by the same instruction
      becomes one modify, exactly as cachegrind merges them. */
   if (s->used > 0) {
      Event* last = &s->events[s->used - 1];
      if (last->tag == Ev_Dr && last->dsize == size && last->inum == inum
          && eqIRAtom(last->ea, ea)) {
         last->tag = Ev_Dm;
         return;
      }
   }
   ev = new_event(s);
   ev->tag = Ev_Dw; ev->inum = inum; ev->iaddr = 0; ev->isize = 0; ev->dsize = size; ev->ea = ea;
}

static void add_D_guarded(State* s, Int size, IRAtom* ea, IRAtom* guard, Bool isWrite)
{
   tl_assert(isIRAtom(ea));
   tl_assert(guard && isIRAtom(guard));
   tl_assert(size >= 1);
   flush_events(s);
   if (clo_data_only) {
      tl_assert(size <= 0xFFFF);
      if (isWrite)
         add_call3(s->sbOut, "trace_store_n", trace_store_n, ea, size, 0, guard);
      else
         add_call3(s->sbOut, "trace_load_n", trace_load_n, ea, size, 0, guard);
      return;
   }
   if (isWrite)
      add_call(s->sbOut, "trace_store", trace_store, ea, mkIRExpr_HWord(size), guard);
   else
      add_call(s->sbOut, "trace_load", trace_load, ea, mkIRExpr_HWord(size), guard);
}

static IRSB* hw_instrument(VgCallbackClosure* closure, IRSB* sbIn,
                           const VexGuestLayout* layout, const VexGuestExtents* vge,
                           const VexArchInfo* archinfo_host, IRType gWordTy, IRType hWordTy)
{
   Int i;
   State s;
   IRTypeEnv* tyenv = sbIn->tyenv;
   Addr cia = 0;
   Int isize;
   Int inum = -1;

   if (gWordTy != hWordTy)
      VG_(tool_panic)("host/guest word size mismatch");

   s.sbOut = deepCopyIRSBExceptStmts(sbIn);
   s.used = 0;

   i = 0;
   while (i < sbIn->stmts_used && sbIn->stmts[i]->tag != Ist_IMark) {
      addStmtToIRSB(s.sbOut, sbIn->stmts[i]);
      i++;
   }

   for (; i < sbIn->stmts_used; i++) {
      IRStmt* st = sbIn->stmts[i];
      if (!st || st->tag == Ist_NoOp)
         continue;
      tl_assert(isFlatIRStmt(st));
      switch (st->tag) {
         case Ist_AbiHint:
         case Ist_Put:
         case Ist_PutI:
         case Ist_MBE:
            break;

         case Ist_IMark:
            cia   = st->Ist.IMark.addr;
            isize = st->Ist.IMark.len;
            if (isize == 0)
               isize = VG_MIN_INSTR_SZB;
            inum++;
            add_Ir(&s, inum, cia, isize);
            break;

         case Ist_WrTmp: {
            IRExpr* data = st->Ist.WrTmp.data;
            if (data->tag == Iex_Load)
               add_Dr(&s, inum, sizeofIRType(data->Iex.Load.ty), data->Iex.Load.addr);
            break;
         }

         case Ist_Store: {
            IRExpr* data = st->Ist.Store.data;
            add_Dw(&s, inum, sizeofIRType(typeOfIRExpr(tyenv, data)), st->Ist.Store.addr);
            break;
         }

         case Ist_StoreG: {
            IRStoreG* sg = st->Ist.StoreG.details;
            IRType type = typeOfIRExpr(tyenv, sg->data);
            tl_assert(type != Ity_INVALID);
            add_D_guarded(&s, sizeofIRType(type), sg->addr, sg->guard, True);
            break;
         }

         case Ist_LoadG: {
            IRLoadG* lg = st->Ist.LoadG.details;
            IRType type = Ity_INVALID, typeWide = Ity_INVALID;
            typeOfIRLoadGOp(lg->cvt, &typeWide, &type);
            tl_assert(type != Ity_INVALID);
            add_D_guarded(&s, sizeofIRType(type), lg->addr, lg->guard, False);
            break;
         }

         case Ist_Dirty: {
            IRDirty* d = st->Ist.Dirty.details;
            if (d->mFx != Ifx_None) {
               tl_assert(d->mAddr != NULL);
               tl_assert(d->mSize != 0);
               if (d->mFx == Ifx_Read || d->mFx == Ifx_Modify)
                  add_Dr(&s, inum, d->mSize, d->mAddr);
               if (d->mFx == Ifx_Write || d->mFx == Ifx_Modify)
                  add_Dw(&s, inum, d->mSize, d->mAddr);
            }
            break;
         }

         case Ist_CAS: {
            IRCAS* cas = st->Ist.CAS.details;
            Int size;
            tl_assert(cas->addr != NULL && cas->dataLo != NULL);
            size = sizeofIRType(typeOfIRExpr(tyenv, cas->dataLo));
            if (cas->dataHi != NULL)
               size *= 2;
            add_Dr(&s, inum, size, cas->addr);
            add_Dw(&s, inum, size, cas->addr);
            break;
         }

         case Ist_LLSC: {
            if (st->Ist.LLSC.storedata == NULL) {
               IRType ty = typeOfIRTemp(tyenv, st->Ist.LLSC.result);
               add_Dr(&s, inum, sizeofIRType(ty), st->Ist.LLSC.addr);
               flush_events(&s);
            } else {
               IRType ty = typeOfIRExpr(tyenv, st->Ist.LLSC.storedata);
               add_Dw(&s, inum, sizeofIRType(ty), st->Ist.LLSC.addr);
            }
            break;
         }

         case Ist_Exit:
            /* The side exit may be taken: emit everything pending before it. */
            flush_events(&s);
            break;

         default:
            ppIRStmt(st);
            tl_assert(0);
      }
      addStmtToIRSB(s.sbOut, st);
   }

   flush_events(&s);
   return s.sbOut;
}

/* ---------------- options, start-up, shutdown ---------------- */

static Bool hw_process_cmd_line_option(const HChar* arg)
{
   if VG_INT_CLO(arg, "--hwtrace-fd", clo_fd) {}
   else if VG_BOOL_CLO(arg, "--hwtrace-data-only", clo_data_only) {}
   else
      return False;
   return True;
}

static void hw_print_usage(void)
{
   VG_(printf)("    --hwtrace-fd=<n>          write the binary trace to file descriptor n\n");
   VG_(printf)("    --hwtrace-data-only=no|yes  data records only, with instruction counts [no]\n");
}

static void hw_print_debug_usage(void)
{
   VG_(printf)("    (none)\n");
}

static void hw_post_clo_init(void)
{
   Int fd;
   if (clo_fd < 0) {
      VG_(umsg)("hwtrace: --hwtrace-fd=N is required (use 'hwemu trace record')\n");
      VG_(exit)(2);
   }
   fd = VG_(safe_fd)((Int)clo_fd);
   if (fd < 0) {
      VG_(umsg)("hwtrace: file descriptor %lld is not usable\n", clo_fd);
      VG_(exit)(2);
   }
   out_fd = fd;
}

static void hw_fini(Int exitcode)
{
   flush_count();
   emit(n_records, KIND_END);
   flush_buf();
   if (out_fd >= 0)
      VG_(close)(out_fd);
   out_fd = -1;
}

static void hw_pre_clo_init(void)
{
   VG_(details_name)            ("hwtrace");
   VG_(details_version)         (NULL);
   VG_(details_description)     ("memory trace recorder for hwemu");
   VG_(details_copyright_author)("hwemu contributors");
   VG_(details_bug_reports_to)  ("the hwemu project");
   VG_(details_avg_translation_sizeB)(275);

   VG_(basic_tool_funcs)(hw_post_clo_init, hw_instrument, hw_fini);
   VG_(needs_command_line_options)(hw_process_cmd_line_option, hw_print_usage,
                                   hw_print_debug_usage);
   VG_(track_start_client_code)(on_start_client_code);
   VG_(atfork)(NULL, NULL, on_fork_child);
   VG_(needs_syscall_wrapper)(on_pre_syscall, on_post_syscall);
}

VG_DETERMINE_INTERFACE_VERSION(hw_pre_clo_init)
