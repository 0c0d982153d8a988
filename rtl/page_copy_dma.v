// page_copy_dma: copies batches of 4 KiB pages from one physical address to another over an
// AXI4 master interface.
//
// One descriptor (src, dst, page count, tag) describes a batch of contiguous pages. The engine
// splits the batch into INCR bursts of at most MAX_BURST_LEN beats that never cross a 4 KiB
// boundary, keeps up to MAX_OUTSTANDING read bursts in flight, buffers read data in an internal
// FIFO and writes each burst out as soon as all of its beats have arrived (store-and-forward per
// burst, so a write burst never stalls on missing data and a burst whose read failed is never
// written). When the batch is finished or aborted, one status (tag, error code, pages copied) is
// presented on a valid/ready interface and irq pulses for one cycle.
//
// Descriptor chains: a descriptor submitted with s_desc_chain = 1 is a pointer (s_desc_src) to
// a chain of 32-byte descriptors in memory, 32-byte aligned, little-endian:
//   bytes  0..7  src      bytes 8..15  dst      bytes 16..19  pages      bytes 20..21  tag
//   bytes 22..23 flags (bit 0: END, the last descriptor of the chain)   bytes 24..31  next
// The engine fetches each descriptor with one read burst (or single beats when MAX_BURST_LEN
// is shorter than 32 bytes), runs it exactly like a submitted one and presents its status; it
// then follows `next` unless END was set or the descriptor failed. Addresses use their low
// ADDR_WIDTH bits and pages its low COUNT_WIDTH bits; set upper bits give RANGE. A chain that
// cannot be followed reports (with the tag given with the pointer) FETCH_ALIGN, FETCH_SLVERR or
// FETCH_DECERR, and ends. s_desc_ready stays low until the chain has ended.
//
// Error codes (m_stat_error):
//   0 OK          every page copied, every write acknowledged OKAY
//   1 ALIGN       src or dst not 4 KiB aligned     (rejected, nothing read or written)
//   2 ZERO        page count is zero               (rejected, nothing read or written)
//   3 RANGE       src or dst range wraps past the top of the address space (rejected)
//   4 RD_SLVERR   a read beat returned SLVERR      (aborted)
//   5 RD_DECERR   a read beat returned DECERR      (aborted)
//   6 WR_SLVERR   a write response was SLVERR      (aborted)
//   7 WR_DECERR   a write response was DECERR      (aborted)
//   8 FETCH_ALIGN a chain pointer (submitted or `next`) is not 32-byte aligned
//   9 FETCH_SLVERR  a descriptor fetch returned SLVERR
//  10 FETCH_DECERR  a descriptor fetch returned DECERR
// After an abort no new burst is issued; bursts already issued are completed as AXI requires
// (all read beats accepted, all write beats sent, all responses collected) and the status is
// presented once the bus is quiet. m_stat_pages counts the leading destination pages whose
// every write burst was issued and acknowledged OKAY (pages up to the first write error; after
// a read error, the pages before it that were written out before the abort).
//
// Reset is synchronous and active high. Verilog-2001 (plus $clog2).

`default_nettype none

module page_copy_dma #(
    parameter ADDR_WIDTH             = 64,   // AXI address width (>= 12 + COUNT_WIDTH)
    parameter DATA_WIDTH             = 64,   // AXI data width: 64, 128 or 256
    parameter ID_WIDTH               = 4,    // AXI ID width (the engine always uses ID 0)
    parameter MAX_BURST_LEN          = 16,   // beats per burst, 1..256
    parameter MAX_OUTSTANDING        = 4,    // read bursts in flight, >= 1
    parameter MAX_WRITE_OUTSTANDING  = 8,    // write bursts awaiting their response, >= 1
    // beats of read-data buffer; the default holds MAX_OUTSTANDING bursts in flight plus the one
    // being written out, so writing a burst does not hold back the next read
    parameter FIFO_DEPTH             = (MAX_OUTSTANDING + 1)
                                       * ((MAX_BURST_LEN < 32768 / DATA_WIDTH)
                                          ? MAX_BURST_LEN : 32768 / DATA_WIDTH),
    parameter COUNT_WIDTH            = 16,   // width of the page count
    parameter TAG_WIDTH              = 8     // width of the descriptor tag
) (
    input  wire                    clk,
    input  wire                    rst,

    // Descriptor input (valid/ready)
    input  wire                    s_desc_valid,
    output wire                    s_desc_ready,
    input  wire [ADDR_WIDTH-1:0]   s_desc_src,
    input  wire [ADDR_WIDTH-1:0]   s_desc_dst,
    input  wire [COUNT_WIDTH-1:0]  s_desc_pages,
    input  wire [TAG_WIDTH-1:0]    s_desc_tag,
    input  wire                    s_desc_chain,   // 1: s_desc_src points to a chain

    // Completion status output (valid/ready) and interrupt pulse
    output wire                    m_stat_valid,
    input  wire                    m_stat_ready,
    output wire [TAG_WIDTH-1:0]    m_stat_tag,
    output wire [3:0]              m_stat_error,
    output wire [COUNT_WIDTH-1:0]  m_stat_pages,
    output wire                    irq,
    output wire                    busy,

    // AXI4 master: write address
    output wire [ID_WIDTH-1:0]     m_axi_awid,
    output wire [ADDR_WIDTH-1:0]   m_axi_awaddr,
    output wire [7:0]              m_axi_awlen,
    output wire [2:0]              m_axi_awsize,
    output wire [1:0]              m_axi_awburst,
    output wire                    m_axi_awlock,
    output wire [3:0]              m_axi_awcache,
    output wire [2:0]              m_axi_awprot,
    output wire                    m_axi_awvalid,
    input  wire                    m_axi_awready,
    // write data
    output wire [DATA_WIDTH-1:0]   m_axi_wdata,
    output wire [DATA_WIDTH/8-1:0] m_axi_wstrb,
    output wire                    m_axi_wlast,
    output wire                    m_axi_wvalid,
    input  wire                    m_axi_wready,
    // write response
    /* verilator lint_off UNUSEDSIGNAL */
    // bid/rid are not needed: the engine issues every burst with ID 0, so responses return in
    // order.
    input  wire [ID_WIDTH-1:0]     m_axi_bid,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [1:0]              m_axi_bresp,
    input  wire                    m_axi_bvalid,
    output wire                    m_axi_bready,
    // read address
    output wire [ID_WIDTH-1:0]     m_axi_arid,
    output wire [ADDR_WIDTH-1:0]   m_axi_araddr,
    output wire [7:0]              m_axi_arlen,
    output wire [2:0]              m_axi_arsize,
    output wire [1:0]              m_axi_arburst,
    output wire                    m_axi_arlock,
    output wire [3:0]              m_axi_arcache,
    output wire [2:0]              m_axi_arprot,
    output wire                    m_axi_arvalid,
    input  wire                    m_axi_arready,
    // read data
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [ID_WIDTH-1:0]     m_axi_rid,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [DATA_WIDTH-1:0]   m_axi_rdata,
    input  wire [1:0]              m_axi_rresp,
    input  wire                    m_axi_rlast,
    input  wire                    m_axi_rvalid,
    output wire                    m_axi_rready
);

    // ------------------------------------------------------------------ derived constants
    localparam BYTES      = DATA_WIDTH / 8;
    localparam SIZE       = $clog2(BYTES);            // AxSIZE and byte-offset bits
    localparam BPP        = 4096 / BYTES;             // beats per 4 KiB page
    localparam OFF_W      = $clog2(BPP);              // beat offset inside a page
    localparam PAGE_W     = ADDR_WIDTH - 12;          // page number bits
    localparam BURST      = (MAX_BURST_LEN < BPP) ? MAX_BURST_LEN : BPP;
    localparam LEN_W      = 10;                       // a burst length 1..256 or a page offset
    localparam FCNT_W     = $clog2(FIFO_DEPTH + 1);   // FIFO occupancy / reservation
    localparam FPTR_W     = (FIFO_DEPTH > 1) ? $clog2(FIFO_DEPTH) : 1;
    localparam ROUT_W     = $clog2(MAX_OUTSTANDING + 1);
    localparam WOUT_W     = $clog2(MAX_WRITE_OUTSTANDING + 1);

    localparam [LEN_W-1:0]  BURST_L   = BURST[LEN_W-1:0];
    localparam [LEN_W-1:0]  BPP_L     = BPP[LEN_W-1:0];
    localparam DEPTH_I    = FIFO_DEPTH;
    localparam LAST_I     = FIFO_DEPTH - 1;
    localparam MAX_RD_I   = MAX_OUTSTANDING;
    localparam MAX_WR_I   = MAX_WRITE_OUTSTANDING;
    localparam [FCNT_W-1:0] DEPTH_C   = DEPTH_I[FCNT_W-1:0];
    localparam [FPTR_W-1:0] LAST_PTR  = LAST_I[FPTR_W-1:0];
    localparam [ROUT_W-1:0] MAX_RD_C  = MAX_RD_I[ROUT_W-1:0];
    localparam [WOUT_W-1:0] MAX_WR_C  = MAX_WR_I[WOUT_W-1:0];
    localparam [2:0]        SIZE_C    = SIZE[2:0];

    localparam [3:0] E_OK = 4'd0, E_ALIGN = 4'd1, E_ZERO = 4'd2, E_RANGE = 4'd3,
                     E_RD_SLV = 4'd4, E_RD_DEC = 4'd5, E_WR_SLV = 4'd6, E_WR_DEC = 4'd7,
                     E_F_ALIGN = 4'd8, E_F_SLV = 4'd9, E_F_DEC = 4'd10;

    localparam [2:0] S_IDLE = 3'd0, S_RUN = 3'd1, S_STAT = 3'd2, S_FETCH = 3'd3, S_DESC = 3'd4;

    // descriptor fetch: 32 bytes in one burst, or in single beats if bursts are shorter
    localparam FETCH_BEATS = 256 / DATA_WIDTH;
    localparam F_BURST     = (BURST >= FETCH_BEATS) ? FETCH_BEATS : 1;
    localparam F_BURST_I   = F_BURST - 1;
    localparam FETCH_I     = FETCH_BEATS - 1;
    localparam [7:0] F_LEN_C   = F_BURST_I[7:0];
    localparam [2:0] F_BURST_C = F_BURST[2:0];
    localparam [2:0] F_LAST_C  = FETCH_I[2:0];
    localparam [2:0] F_BEATS_C = FETCH_BEATS[2:0];

    // ------------------------------------------------------------------ parameter checks
    // (elaboration-time: an impossible configuration fails to build)
    generate
        if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin : g_bad_dw
            invalid_parameter_DATA_WIDTH_must_be_64_128_or_256 u_err ();
        end
        if (MAX_BURST_LEN < 1 || MAX_BURST_LEN > 256) begin : g_bad_bl
            invalid_parameter_MAX_BURST_LEN_must_be_1_to_256 u_err ();
        end
        if (MAX_OUTSTANDING < 1 || MAX_WRITE_OUTSTANDING < 1) begin : g_bad_out
            invalid_parameter_outstanding_must_be_at_least_1 u_err ();
        end
        if (FIFO_DEPTH < BURST) begin : g_bad_fifo
            invalid_parameter_FIFO_DEPTH_must_hold_one_burst u_err ();
        end
        if (ADDR_WIDTH < 13 || COUNT_WIDTH > ADDR_WIDTH - 12) begin : g_bad_aw
            invalid_parameter_ADDR_WIDTH_too_small_for_COUNT_WIDTH u_err ();
        end
        if (ADDR_WIDTH > 64 || COUNT_WIDTH > 32 || TAG_WIDTH > 16) begin : g_bad_fields
            invalid_parameter_fields_must_fit_the_chain_descriptor u_err ();
        end
    endgenerate

    // ------------------------------------------------------------------ control state
    reg [2:0]             state;
    reg                   abort;        // an error was seen: issue nothing new, drain
    reg                   b_failed;     // a write response was an error: stop counting pages
    reg [3:0]             err;
    reg [TAG_WIDTH-1:0]   tag;

    // descriptor chains
    reg                   chain;        // working through a chain
    reg                   chain_end;    // the current descriptor is the chain's last
    reg [TAG_WIDTH-1:0]   chain_tag;    // tag submitted with the chain pointer
    reg [ADDR_WIDTH-1:0]  next_ptr;     // address of the next descriptor
    reg [ADDR_WIDTH-6:0]  f_line;       // descriptor being fetched (32-byte unit)
    reg [2:0]             f_cnt;        // fetch beats received
    reg [2:0]             f_req;        // fetch beats requested
    reg                   f_busy;       // a fetch burst is in flight
    reg [3:0]             f_err;        // fetch error code (E_OK if none)
    /* verilator lint_off UNUSEDSIGNAL */
    // reserved descriptor bits (flags 15..1, tag bits above TAG_WIDTH) are ignored
    reg [255:0]           desc_buf;     // the fetched descriptor
    /* verilator lint_on UNUSEDSIGNAL */
    reg                   irq_r;

    // read side: next burst position and bursts in flight
    reg [PAGE_W-1:0]      rd_page;
    reg [OFF_W-1:0]       rd_off;
    reg [COUNT_WIDTH-1:0] rd_left;      // pages not yet fully requested
    reg [ROUT_W-1:0]      rd_out;       // read bursts requested, rlast not yet seen
    // write side
    reg [PAGE_W-1:0]      wr_page;
    reg [OFF_W-1:0]       wr_off;
    reg [COUNT_WIDTH-1:0] wr_left;      // pages not yet fully addressed
    reg [WOUT_W-1:0]      w_bursts;     // write bursts addressed, data not all sent
    reg [OFF_W-1:0]       w_off;        // W channel position (to find wlast)
    reg [LEN_W-1:0]       w_beat;       // beat inside the current W burst
    reg [WOUT_W-1:0]      b_pend;       // write bursts awaiting their B response
    reg [OFF_W-1:0]       b_off;        // B channel position (to count whole pages)
    reg [COUNT_WIDTH-1:0] pages_done;

    // FIFO between R and W
    reg [DATA_WIDTH-1:0]  fifo_mem [0:FIFO_DEPTH-1];
    reg [FPTR_W-1:0]      fifo_wp;
    reg [FPTR_W-1:0]      fifo_rp;
    reg [FCNT_W-1:0]      committed;    // beats in FIFO + beats reserved by requested reads
    reg [FCNT_W-1:0]      avail;        // beats in FIFO not yet given to a write burst

    // AXI address channel registers
    reg                   arvalid_r;
    reg [ADDR_WIDTH-1:0]  araddr_r;
    reg [7:0]             arlen_r;
    reg                   awvalid_r;
    reg [ADDR_WIDTH-1:0]  awaddr_r;
    reg [7:0]             awlen_r;

    // ------------------------------------------------------------------ burst lengths
    // A burst runs to the end of the page or MAX_BURST_LEN beats, whichever comes first.
    wire [LEN_W-1:0] rd_room = BPP_L - {{(LEN_W-OFF_W){1'b0}}, rd_off};
    wire [LEN_W-1:0] rd_len  = (rd_room < BURST_L) ? rd_room : BURST_L;
    wire [LEN_W-1:0] wr_room = BPP_L - {{(LEN_W-OFF_W){1'b0}}, wr_off};
    wire [LEN_W-1:0] wr_len  = (wr_room < BURST_L) ? wr_room : BURST_L;
    wire [LEN_W-1:0] w_room  = BPP_L - {{(LEN_W-OFF_W){1'b0}}, w_off};
    wire [LEN_W-1:0] w_len   = (w_room < BURST_L) ? w_room : BURST_L;
    wire [LEN_W-1:0] b_room  = BPP_L - {{(LEN_W-OFF_W){1'b0}}, b_off};
    wire [LEN_W-1:0] b_len   = (b_room < BURST_L) ? b_room : BURST_L;

    // widened copies for the FIFO arithmetic
    localparam FL_W = ((FCNT_W > LEN_W) ? FCNT_W : LEN_W) + 1;
    wire [FL_W-1:0] rd_len_f  = {{(FL_W-LEN_W){1'b0}}, rd_len};
    wire [FL_W-1:0] wr_len_f  = {{(FL_W-LEN_W){1'b0}}, wr_len};
    wire [FL_W-1:0] free_f    = {{(FL_W-FCNT_W){1'b0}}, DEPTH_C - committed};
    wire [FL_W-1:0] avail_f   = {{(FL_W-FCNT_W){1'b0}}, avail};

    // ------------------------------------------------------------------ handshakes
    wire running  = (state == S_RUN);
    wire ar_hs    = arvalid_r && m_axi_arready;
    wire aw_hs    = awvalid_r && m_axi_awready;
    wire r_hs     = m_axi_rvalid;               // rready is always 1 (space was reserved)
    wire w_valid  = (w_bursts != {WOUT_W{1'b0}});
    wire w_last   = (w_beat == w_len - 10'd1);
    wire w_hs     = w_valid && m_axi_wready;
    wire b_hs     = m_axi_bvalid;               // bready is always 1

    wire ar_load  = running && !abort && (rd_left != {COUNT_WIDTH{1'b0}})
                    && (!arvalid_r || m_axi_arready)
                    && (rd_out < MAX_RD_C) && (free_f >= rd_len_f);
    wire aw_load  = running && !abort && (wr_left != {COUNT_WIDTH{1'b0}})
                    && (!awvalid_r || m_axi_awready)
                    && (b_pend < MAX_WR_C) && (avail_f >= wr_len_f);

    wire rd_quiet = !arvalid_r && (rd_out == {ROUT_W{1'b0}});
    wire wr_quiet = !awvalid_r && !w_valid && (b_pend == {WOUT_W{1'b0}});
    wire all_sent = (rd_left == {COUNT_WIDTH{1'b0}}) && (wr_left == {COUNT_WIDTH{1'b0}});
    wire finished = running && rd_quiet && wr_quiet && (abort || all_sent);

    wire desc_hs  = s_desc_valid && (state == S_IDLE);

    // the descriptor to start: submitted (IDLE) or fetched from memory (DESC)
    wire                   from_mem = (state == S_DESC);
    wire [ADDR_WIDTH-1:0]  d_src    = from_mem ? desc_buf[ADDR_WIDTH-1:0]        : s_desc_src;
    wire [ADDR_WIDTH-1:0]  d_dst    = from_mem ? desc_buf[64+ADDR_WIDTH-1:64]    : s_desc_dst;
    wire [COUNT_WIDTH-1:0] d_pages  = from_mem ? desc_buf[128+COUNT_WIDTH-1:128] : s_desc_pages;
    wire [TAG_WIDTH-1:0]   d_tag    = from_mem ? desc_buf[160+TAG_WIDTH-1:160]   : s_desc_tag;
    wire                   d_end    = desc_buf[176];
    wire [ADDR_WIDTH-1:0]  d_next   = desc_buf[192+ADDR_WIDTH-1:192];
    // fields of a fetched descriptor that do not fit the engine's widths
    wire [63:0] hi_src   = desc_buf[63:0] >> ADDR_WIDTH;
    wire [63:0] hi_dst   = desc_buf[127:64] >> ADDR_WIDTH;
    wire [31:0] hi_pages = desc_buf[159:128] >> COUNT_WIDTH;
    wire too_wide = from_mem && ((hi_src != 64'd0) || (hi_dst != 64'd0) || (hi_pages != 32'd0));

    // descriptor checks
    wire [PAGE_W:0] src_end = {1'b0, d_src[ADDR_WIDTH-1:12]}
                            + {{(PAGE_W+1-COUNT_WIDTH){1'b0}}, d_pages};
    wire [PAGE_W:0] dst_end = {1'b0, d_dst[ADDR_WIDTH-1:12]}
                            + {{(PAGE_W+1-COUNT_WIDTH){1'b0}}, d_pages};
    wire misaligned = (d_src[11:0] != 12'd0) || (d_dst[11:0] != 12'd0);
    wire zero_count = (d_pages == {COUNT_WIDTH{1'b0}});
    // the last page may end exactly at the top of the address space, but not beyond it
    wire wraps      = (src_end[PAGE_W] && (src_end[PAGE_W-1:0] != {PAGE_W{1'b0}}))
                   || (dst_end[PAGE_W] && (dst_end[PAGE_W-1:0] != {PAGE_W{1'b0}}));
    wire [3:0] desc_err = misaligned ? E_ALIGN : too_wide ? E_RANGE : zero_count ? E_ZERO
                        : wraps ? E_RANGE : E_OK;

    // start a copy this cycle
    wire start = (desc_hs && !s_desc_chain) || (from_mem && f_err == E_OK);

    // descriptor fetch
    wire fetch_load = (state == S_FETCH) && !f_busy && !arvalid_r && (f_req != F_BEATS_C);
    wire [4:0] f_off = {2'd0, f_req} << SIZE;   // byte offset inside the descriptor
    wire [255:0] desc_shift;
    generate
        if (DATA_WIDTH == 256) begin : g_desc256
            assign desc_shift = m_axi_rdata;
        end else begin : g_desc_narrow
            assign desc_shift = {m_axi_rdata, desc_buf[255:DATA_WIDTH]};
        end
    endgenerate

    // bus errors
    wire r_err = r_hs && (m_axi_rresp[1] == 1'b1);
    wire b_err = b_hs && (m_axi_bresp[1] == 1'b1);

    // ------------------------------------------------------------------ control
    always @(posedge clk) begin
        irq_r <= 1'b0;
        if (rst) begin
            state      <= S_IDLE;
            abort      <= 1'b0;
            b_failed   <= 1'b0;
            err        <= E_OK;
            tag        <= {TAG_WIDTH{1'b0}};
            rd_page    <= {PAGE_W{1'b0}};
            rd_off     <= {OFF_W{1'b0}};
            rd_left    <= {COUNT_WIDTH{1'b0}};
            wr_page    <= {PAGE_W{1'b0}};
            wr_off     <= {OFF_W{1'b0}};
            wr_left    <= {COUNT_WIDTH{1'b0}};
            w_off      <= {OFF_W{1'b0}};
            w_beat     <= {LEN_W{1'b0}};
            b_off      <= {OFF_W{1'b0}};
            pages_done <= {COUNT_WIDTH{1'b0}};
            chain      <= 1'b0;
            chain_end  <= 1'b0;
            chain_tag  <= {TAG_WIDTH{1'b0}};
            next_ptr   <= {ADDR_WIDTH{1'b0}};
            f_line     <= {(ADDR_WIDTH-5){1'b0}};
            f_cnt      <= 3'd0;
            f_req      <= 3'd0;
            f_busy     <= 1'b0;
            f_err      <= E_OK;
            desc_buf   <= 256'd0;
        end else begin
            case (state)
                S_IDLE: if (desc_hs) begin
                    chain     <= s_desc_chain;
                    chain_end <= 1'b0;
                    chain_tag <= s_desc_tag;
                    if (s_desc_chain) begin
                        tag        <= s_desc_tag;
                        pages_done <= {COUNT_WIDTH{1'b0}};
                        if (s_desc_src[4:0] != 5'd0) begin
                            err   <= E_F_ALIGN;
                            state <= S_STAT;
                            irq_r <= 1'b1;
                        end else begin
                            f_line <= s_desc_src[ADDR_WIDTH-1:5];
                            f_cnt  <= 3'd0;
                            f_req  <= 3'd0;
                            f_busy <= 1'b0;
                            f_err  <= E_OK;
                            state  <= S_FETCH;
                        end
                    end
                end
                S_FETCH: begin
                    if (fetch_load) begin
                        f_busy <= 1'b1;
                        f_req  <= f_req + F_BURST_C;
                    end
                    if (r_hs) begin
                        desc_buf <= desc_shift;
                        f_cnt    <= f_cnt + 3'd1;
                        if (m_axi_rlast)
                            f_busy <= 1'b0;
                        if (r_err && f_err == E_OK)
                            f_err <= m_axi_rresp[0] ? E_F_DEC : E_F_SLV;
                        if (f_cnt == F_LAST_C)
                            state <= S_DESC;
                    end
                end
                S_DESC: begin
                    chain_end <= d_end;
                    next_ptr  <= d_next;
                    if (f_err != E_OK) begin
                        err        <= f_err;
                        tag        <= chain_tag;
                        pages_done <= {COUNT_WIDTH{1'b0}};
                        state      <= S_STAT;
                        irq_r      <= 1'b1;
                    end
                end
                S_RUN: begin
                    if (ar_load) begin
                        if (rd_len == rd_room) begin
                            rd_off  <= {OFF_W{1'b0}};
                            rd_page <= rd_page + 1'b1;
                            rd_left <= rd_left - 1'b1;
                        end else begin
                            rd_off  <= rd_off + rd_len[OFF_W-1:0];
                        end
                    end
                    if (aw_load) begin
                        if (wr_len == wr_room) begin
                            wr_off  <= {OFF_W{1'b0}};
                            wr_page <= wr_page + 1'b1;
                            wr_left <= wr_left - 1'b1;
                        end else begin
                            wr_off  <= wr_off + wr_len[OFF_W-1:0];
                        end
                    end
                    if (w_hs) begin
                        if (w_last) begin
                            w_beat <= {LEN_W{1'b0}};
                            w_off  <= (w_len == w_room) ? {OFF_W{1'b0}}
                                                        : w_off + w_len[OFF_W-1:0];
                        end else begin
                            w_beat <= w_beat + 10'd1;
                        end
                    end
                    // responses return in order: count whole pages up to the first failure
                    if (b_err)
                        b_failed <= 1'b1;
                    if (b_hs && !b_err && !b_failed) begin
                        if (b_len == b_room) begin
                            b_off      <= {OFF_W{1'b0}};
                            pages_done <= pages_done + 1'b1;
                        end else begin
                            b_off      <= b_off + b_len[OFF_W-1:0];
                        end
                    end
                    // first error wins; a read error is taken before a write error of the
                    // same cycle
                    if (!abort && (r_err || b_err)) begin
                        abort <= 1'b1;
                        if (r_err)
                            err <= m_axi_rresp[0] ? E_RD_DEC : E_RD_SLV;
                        else
                            err <= m_axi_bresp[0] ? E_WR_DEC : E_WR_SLV;
                    end
                    if (finished) begin
                        state <= S_STAT;
                        irq_r <= 1'b1;
                    end
                end
                S_STAT: if (m_stat_ready) begin
                    if (chain && !chain_end && err == E_OK) begin
                        if (next_ptr[4:0] != 5'd0) begin
                            // a second status, back to back: the chain cannot go on
                            err        <= E_F_ALIGN;
                            tag        <= chain_tag;
                            pages_done <= {COUNT_WIDTH{1'b0}};
                            chain_end  <= 1'b1;
                            irq_r      <= 1'b1;
                        end else begin
                            f_line <= next_ptr[ADDR_WIDTH-1:5];
                            f_cnt  <= 3'd0;
                            f_req  <= 3'd0;
                            f_busy <= 1'b0;
                            f_err  <= E_OK;
                            state  <= S_FETCH;
                        end
                    end else begin
                        state <= S_IDLE;
                    end
                end
                default: state <= S_IDLE;
            endcase
            if (start) begin
                tag        <= d_tag;
                err        <= desc_err;
                abort      <= 1'b0;
                b_failed   <= 1'b0;
                rd_page    <= d_src[ADDR_WIDTH-1:12];
                wr_page    <= d_dst[ADDR_WIDTH-1:12];
                rd_off     <= {OFF_W{1'b0}};
                wr_off     <= {OFF_W{1'b0}};
                w_off      <= {OFF_W{1'b0}};
                w_beat     <= {LEN_W{1'b0}};
                b_off      <= {OFF_W{1'b0}};
                pages_done <= {COUNT_WIDTH{1'b0}};
                if (desc_err == E_OK) begin
                    rd_left <= d_pages;
                    wr_left <= d_pages;
                    state   <= S_RUN;
                end else begin
                    rd_left <= {COUNT_WIDTH{1'b0}};
                    wr_left <= {COUNT_WIDTH{1'b0}};
                    state   <= S_STAT;
                    irq_r   <= 1'b1;
                end
            end
        end
    end

    // ------------------------------------------------------------------ AXI address channels
    always @(posedge clk) begin
        if (rst) begin
            arvalid_r <= 1'b0;
            araddr_r  <= {ADDR_WIDTH{1'b0}};
            arlen_r   <= 8'd0;
            awvalid_r <= 1'b0;
            awaddr_r  <= {ADDR_WIDTH{1'b0}};
            awlen_r   <= 8'd0;
        end else begin
            if (ar_load) begin
                arvalid_r <= 1'b1;
                araddr_r  <= {rd_page, rd_off, {SIZE{1'b0}}};
                arlen_r   <= rd_len[7:0] - 8'd1;
            end else if (fetch_load) begin
                arvalid_r <= 1'b1;
                araddr_r  <= {f_line, f_off};
                arlen_r   <= F_LEN_C;
            end else if (ar_hs) begin
                arvalid_r <= 1'b0;
            end
            if (aw_load) begin
                awvalid_r <= 1'b1;
                awaddr_r  <= {wr_page, wr_off, {SIZE{1'b0}}};
                awlen_r   <= wr_len[7:0] - 8'd1;
            end else if (aw_hs) begin
                awvalid_r <= 1'b0;
            end
        end
    end

    // ------------------------------------------------------------------ counters
    wire rlast_hs = r_hs && m_axi_rlast;
    wire wlast_hs = w_hs && w_last;

    always @(posedge clk) begin
        if (rst || state != S_RUN) begin
            rd_out    <= {ROUT_W{1'b0}};
            w_bursts  <= {WOUT_W{1'b0}};
            b_pend    <= {WOUT_W{1'b0}};
            committed <= {FCNT_W{1'b0}};
            avail     <= {FCNT_W{1'b0}};
            fifo_wp   <= {FPTR_W{1'b0}};
            fifo_rp   <= {FPTR_W{1'b0}};
        end else begin
            case ({ar_load, rlast_hs})
                2'b10:   rd_out <= rd_out + 1'b1;
                2'b01:   rd_out <= rd_out - 1'b1;
                default: rd_out <= rd_out;
            endcase
            case ({aw_load, wlast_hs})
                2'b10:   w_bursts <= w_bursts + 1'b1;
                2'b01:   w_bursts <= w_bursts - 1'b1;
                default: w_bursts <= w_bursts;
            endcase
            case ({aw_load, b_hs})
                2'b10:   b_pend <= b_pend + 1'b1;
                2'b01:   b_pend <= b_pend - 1'b1;
                default: b_pend <= b_pend;
            endcase
            committed <= committed + (ar_load ? rd_len_f[FCNT_W-1:0] : {FCNT_W{1'b0}})
                                   - {{(FCNT_W-1){1'b0}}, w_hs};
            avail     <= avail + {{(FCNT_W-1){1'b0}}, r_hs}
                               - (aw_load ? wr_len_f[FCNT_W-1:0] : {FCNT_W{1'b0}});
            if (r_hs)
                fifo_wp <= (fifo_wp == LAST_PTR) ? {FPTR_W{1'b0}} : fifo_wp + 1'b1;
            if (w_hs)
                fifo_rp <= (fifo_rp == LAST_PTR) ? {FPTR_W{1'b0}} : fifo_rp + 1'b1;
        end
    end

    // FIFO storage: no reset needed (contents are only read after being written)
    always @(posedge clk) begin
        if (r_hs)
            fifo_mem[fifo_wp] <= m_axi_rdata;
    end

    // ------------------------------------------------------------------ outputs
    assign s_desc_ready  = (state == S_IDLE);
    assign m_stat_valid  = (state == S_STAT);
    assign m_stat_tag    = tag;
    assign m_stat_error  = err;
    assign m_stat_pages  = pages_done;
    assign irq           = irq_r;
    assign busy          = (state != S_IDLE);

    assign m_axi_arid    = {ID_WIDTH{1'b0}};
    assign m_axi_araddr  = araddr_r;
    assign m_axi_arlen   = arlen_r;
    assign m_axi_arsize  = SIZE_C;
    assign m_axi_arburst = 2'b01;               // INCR
    assign m_axi_arlock  = 1'b0;
    assign m_axi_arcache = 4'b0011;             // normal, non-cacheable, bufferable
    assign m_axi_arprot  = 3'b000;
    assign m_axi_arvalid = arvalid_r;
    assign m_axi_rready  = 1'b1;

    assign m_axi_awid    = {ID_WIDTH{1'b0}};
    assign m_axi_awaddr  = awaddr_r;
    assign m_axi_awlen   = awlen_r;
    assign m_axi_awsize  = SIZE_C;
    assign m_axi_awburst = 2'b01;
    assign m_axi_awlock  = 1'b0;
    assign m_axi_awcache = 4'b0011;
    assign m_axi_awprot  = 3'b000;
    assign m_axi_awvalid = awvalid_r;

    assign m_axi_wdata   = fifo_mem[fifo_rp];
    assign m_axi_wstrb   = {(DATA_WIDTH/8){1'b1}};
    assign m_axi_wlast   = w_last;
    assign m_axi_wvalid  = w_valid;
    assign m_axi_bready  = 1'b1;

endmodule

`default_nettype wire
