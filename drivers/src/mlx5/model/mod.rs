//! A software model of an mlx5 device (docs/mlx5.md §7), for host tests and benchmarks.
//!
//! It implements the init segment (initializing, command queue address, doorbell, health
//! buffer and counter), the command engine (entry and mailbox checks with delivery statuses,
//! opcode dispatch with state checks: BAD_SYS_STATE out of order, NO_RESOURCES without pages),
//! page management (boot/init/regular counts, page requests and reclaims by EQE), the objects
//! a port needs (UAR, EQ, CQ, PD, TD, TIS, SQ, RQ, TIR, flow table/group/entry/root), the
//! vport context and PAOS/PMTU/PTYS registers, and the TX/RX engines (WQE parsing, data
//! segments checked against the reserved lkey, CQE ownership, VLAN strip when `vsd` = 0, CQ
//! overrun → CQ error EQE). Field offsets come from [`super::layouts`], like the driver's.
//!
//! Faults ([`Faults`]): command delay, a command that never completes, a status or delivery
//! failure for an opcode, health syndrome, dead device (all ones), stalled health counter,
//! nic_interface state, page requests, a full CQ, an error CQE on the next send.

pub mod mem;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::Mlx5Hw;
use super::layouts::ifc::*;
use super::layouts::{
    cmd_entry as ce, cqe, eqe, hdr, init_seg, mailbox as mb, op, read_be32, read_be64, reg, uar,
    wqe, write_be32, write_be64,
};
use crate::dma::{DmaAllocator, PAGE_SIZE};
pub use mem::{ModelDma, PHYS_OFFSET};

/// Device identity and sizes.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub fw_rev: (u16, u16, u16),
    pub boot_pages: i32,
    pub init_pages: i32,
    pub regular_pages: i32,
    /// Reads of `initializing` that still see it set.
    pub initializing_reads: u32,
    pub mac: [u8; 6],
    pub max_mtu: u16,
    /// Ethernet cap wqe_inline_mode (0: L2 inline required, as CX4).
    pub wqe_inline_mode: u32,
    pub resd_lkey: u32,
    /// Check the command entry signature (Linux computes it; the driver does too).
    pub check_signature: bool,
    /// Bytes of BAR0.
    pub bar_size: usize,
    /// Frames sent are also received (wire loopback).
    pub loopback: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            fw_rev: (14, 12, 1220),
            boot_pages: 6,
            init_pages: 16,
            regular_pages: 2,
            initializing_reads: 3,
            mac: [0x24, 0x8a, 0x07, 0x11, 0x22, 0x33],
            max_mtu: 9216 + 22,
            wqe_inline_mode: 0,
            resd_lkey: 0x100,
            check_signature: true,
            bar_size: 32 << 20,
            loopback: false,
        }
    }
}

/// Injected faults. Set through [`ModelHandle::with`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every command completes this many microseconds (of `delay_us` time) after its doorbell.
    pub cmd_delay_us: u64,
    /// Commands with this opcode never complete.
    pub hang_opcode: Option<u16>,
    /// Commands with this opcode fail with (status, syndrome).
    pub fail_opcode: Option<(u16, u8, u32)>,
    /// Commands with this opcode fail delivery with this status.
    pub delivery_fail: Option<(u16, u8)>,
    /// Health buffer syndrome (0: healthy).
    pub health_synd: u8,
    /// Every register reads all ones; nothing completes.
    pub dead: bool,
    /// The health counter stops.
    pub counter_frozen: bool,
    /// NIC interface state reported in 0x14 [10:8].
    pub nic_interface: u8,
    /// CQs report overrun on their next completion (as if the driver never updated set_ci).
    pub cq_full: bool,
    /// The next send completes with an error CQE (syndrome local protection).
    pub tx_error_next: bool,
    /// QUERY_PAGES answers this many pages fewer than the device needs.
    pub underreport_pages: i32,
    /// The device dies (all ones) when a command with this opcode is posted.
    pub die_on_opcode: Option<u16>,
}

/// One command as the device saw it.
#[derive(Clone, Debug)]
pub struct CommandRecord {
    /// The 64-byte entry as the driver posted it (before the device wrote its output).
    pub entry: [u8; ce::SIZE],
    /// Whether a [`Responder`] supplied the output.
    pub replayed: bool,
    pub opcode: u16,
    pub op_mod: u16,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    pub delivery: u8,
    /// The entry's token.
    pub token: u8,
}

/// Answers a command instead of the model (golden replay): `Some(output)` or fall through.
pub type Responder = Box<dyn FnMut(u16, u16, &[u8], usize) -> Option<Vec<u8>>>;

#[derive(Clone, Debug, Default)]
struct Ring {
    pas: Vec<u64>,
    log_pg: u32,
}

impl Ring {
    fn addr(&self, off: usize) -> u64 {
        let pg = PAGE_SIZE << self.log_pg.min(20);
        match self.pas.get(off / pg) {
            Some(base) => base + (off % pg) as u64,
            None => 0,
        }
    }
}

#[derive(Debug)]
struct EqObj {
    ring: Ring,
    log_size: u8,
    pi: u32,
    ci: u32,
    mask: u64,
}

#[derive(Debug)]
struct CqObj {
    ring: Ring,
    log_size: u8,
    pi: u32,
    dbr: u64,
    error: bool,
}

#[derive(Debug)]
struct WqObj {
    ring: Ring,
    log_size: u8,
    log_stride: u32,
    dbr: u64,
    cqn: u32,
    state: u32,
    rlky: bool,
    vsd: bool,
    uar: u32,
    ci: u16,
}

/// (group id, action, destinations (type, id), match value).
type FlowEntry = (u32, u32, Vec<(u8, u32)>, Vec<u8>);

#[derive(Debug, Default)]
struct FlowTable {
    groups: Vec<(u32, u32, u32, u8, Vec<u8>)>,
    /// flow index -> (group id, action, destinations, match value)
    entries: BTreeMap<u32, FlowEntry>,
}

/// Counters the tests look at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelStats {
    pub commands: u64,
    pub tx_frames: u64,
    pub rx_frames: u64,
    pub rx_dropped_no_steering: u64,
    pub rx_out_of_buffer: u64,
    pub tx_doorbells: u64,
    pub doorbell_errors: u64,
    pub wqe_errors: u64,
    pub cq_overruns: u64,
    pub eq_overruns: u64,
}

/// The device.
pub struct Model {
    pub config: ModelConfig,
    pub faults: Faults,
    pub stats: ModelStats,
    pub mem: &'static ModelDma,
    /// Every command, in order.
    pub log: Vec<CommandRecord>,
    pub responder: Option<Responder>,
    /// Frames the device put on the wire.
    pub wire_tx: VecDeque<Vec<u8>>,
    clock_us: u64,
    initializing_reads: u32,
    health_counter: u32,
    cmdq: u64,
    cmdq_h: u32,
    pending: Vec<(u32, u64)>,
    enabled: bool,
    issi: u32,
    init_done: bool,
    pages: BTreeSet<u64>,
    pages_owed: i32,
    next_uar: u32,
    next_obj: u32,
    eqs: BTreeMap<u32, EqObj>,
    cqs: BTreeMap<u32, CqObj>,
    sqs: BTreeMap<u32, WqObj>,
    rqs: BTreeMap<u32, WqObj>,
    pds: BTreeSet<u32>,
    tds: BTreeSet<u32>,
    tises: BTreeSet<u32>,
    tirs: BTreeMap<u32, u32>,
    tables: BTreeMap<u32, FlowTable>,
    root: Option<u32>,
    pub vport_mtu: u16,
    pub promisc: bool,
    pub admin_mtu: u16,
    pub link_up: bool,
    /// Send doorbells are queued instead of processed at once; [`Model::run_deferred_tx`]
    /// processes them (benchmarks time the driver's side alone this way).
    pub defer_tx: bool,
    deferred_tx: Vec<(u32, u32)>,
    /// Pages the firmware asked for by event and not yet received (negative: to return).
    pub pages_requested: i32,
}

/// What the tests and the driver hold: a shared handle on the model.
#[derive(Clone)]
pub struct ModelHandle(pub Rc<RefCell<Model>>);

impl ModelHandle {
    pub fn new(config: ModelConfig) -> ModelHandle {
        let mem = ModelDma::leak();
        let initializing_reads = config.initializing_reads;
        ModelHandle(Rc::new(RefCell::new(Model {
            config,
            faults: Faults::default(),
            stats: ModelStats::default(),
            mem,
            log: Vec::new(),
            responder: None,
            wire_tx: VecDeque::new(),
            clock_us: 0,
            initializing_reads,
            health_counter: 0,
            cmdq: 0,
            cmdq_h: 0,
            pending: Vec::new(),
            enabled: false,
            issi: 0,
            init_done: false,
            pages: BTreeSet::new(),
            pages_owed: 0,
            next_uar: 0x10,
            next_obj: 0x10,
            eqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            sqs: BTreeMap::new(),
            rqs: BTreeMap::new(),
            pds: BTreeSet::new(),
            tds: BTreeSet::new(),
            tises: BTreeSet::new(),
            tirs: BTreeMap::new(),
            tables: BTreeMap::new(),
            root: None,
            vport_mtu: 1500,
            promisc: false,
            admin_mtu: 0,
            link_up: false,
            defer_tx: false,
            deferred_tx: Vec::new(),
            pages_requested: 0,
        })))
    }

    /// The model's DMA memory (build packet pools from it).
    pub fn dma(&self) -> &'static ModelDma {
        self.0.borrow().mem
    }

    /// Runs `f` on the model (faults, inspection).
    pub fn with<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }

    /// A frame arrives from the wire. Returns whether it reached a receive queue.
    pub fn inject(&self, frame: &[u8]) -> bool {
        self.0.borrow_mut().receive(frame)
    }

    /// Frames sent since the last call.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        self.0.borrow_mut().wire_tx.drain(..).collect()
    }

    /// The firmware asks for `pages` more pages (negative: gives them back) by EQE.
    pub fn request_pages(&self, pages: i32) -> bool {
        self.0.borrow_mut().page_request(pages)
    }

    /// Pages the driver has given and not taken back.
    pub fn pages_held(&self) -> usize {
        self.0.borrow().pages.len()
    }
}

impl Mlx5Hw for ModelHandle {
    fn read32(&mut self, offset: usize) -> u32 {
        self.0.borrow_mut().read_reg(offset)
    }

    fn write32(&mut self, offset: usize, value: u32) {
        self.0.borrow_mut().write_reg(offset, value);
    }

    fn write64(&mut self, offset: usize, value: u64) {
        self.0.borrow_mut().write_reg64(offset, value);
    }

    fn allocator(&self) -> &'static dyn DmaAllocator {
        self.0.borrow().mem
    }

    fn delay_us(&mut self, us: u32) {
        self.0.borrow_mut().advance(u64::from(us));
    }

    fn bar_size(&self) -> usize {
        self.0.borrow().config.bar_size
    }
}

fn out(len: usize) -> Vec<u8> {
    vec![0u8; len.max(hdr::SIZE)]
}

type CmdResult = Result<Vec<u8>, (u8, u32)>;

const BAD_OP: (u8, u32) = (0x02, 0x1);
const BAD_PARAM: (u8, u32) = (0x03, 0x2);
const BAD_SYS_STATE: (u8, u32) = (0x04, 0x3);
const BAD_RESOURCE: (u8, u32) = (0x05, 0x4);
const BAD_RES_STATE: (u8, u32) = (0x09, 0x5);
const NO_RESOURCES: (u8, u32) = (0x0f, 0x6);
const BAD_INPUT_LEN: (u8, u32) = (0x50, 0x7);

impl Model {
    /// Model time in microseconds (advanced by the driver's delays).
    pub fn clock_us(&self) -> u64 {
        self.clock_us
    }

    fn advance(&mut self, us: u64) {
        self.clock_us += us;
        let now = self.clock_us;
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(i, _)| *i)
            .collect();
        self.pending.retain(|(_, t)| *t > now);
        for i in due {
            self.run_entry(i);
        }
    }

    fn read_reg(&mut self, offset: usize) -> u32 {
        if self.faults.dead {
            return u32::MAX;
        }
        let (maj, min, sub) = self.config.fw_rev;
        match offset {
            init_seg::FW_REV => (u32::from(min) << 16) | u32::from(maj),
            init_seg::CMDIF_REV_FW_SUB => (init_seg::CMDIF_REV << 16) | u32::from(sub),
            init_seg::CMDQ_ADDR_H => self.cmdq_h,
            init_seg::CMDQ_ADDR_L_SZ => {
                (self.cmdq as u32 & !0xfff)
                    | (u32::from(self.faults.nic_interface & 7) << 8)
                    | (5 << 4)
                    | 6
            }
            init_seg::INITIALIZING => {
                if self.initializing_reads > 0 {
                    self.initializing_reads -= 1;
                    init_seg::INITIALIZING_BIT
                } else {
                    0
                }
            }
            init_seg::HEALTH_FW_VER => {
                (u32::from(maj) << 24) | (u32::from(min) << 16) | u32::from(sub)
            }
            init_seg::HEALTH_SYND => u32::from(self.faults.health_synd) << 16,
            init_seg::HEALTH_RFR_SEVERITY => {
                if self.faults.health_synd != 0 {
                    1 << 31
                } else {
                    0
                }
            }
            init_seg::HEALTH_COUNTER => {
                if !self.faults.counter_frozen {
                    self.health_counter = (self.health_counter + 1) & 0x00ff_ffff;
                }
                self.health_counter
            }
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: usize, value: u32) {
        if self.faults.dead {
            return;
        }
        match offset {
            init_seg::CMDQ_ADDR_H => self.cmdq_h = value,
            init_seg::CMDQ_ADDR_L_SZ => {
                self.cmdq = (u64::from(self.cmdq_h) << 32) | u64::from(value & !0xfff);
            }
            init_seg::CMD_DBELL => {
                for i in 0..32 {
                    if value & (1 << i) != 0 {
                        let delay = self.faults.cmd_delay_us;
                        if delay == 0 {
                            self.run_entry(i);
                        } else {
                            let due = self.clock_us + delay;
                            self.pending.push((i, due));
                        }
                    }
                }
            }
            o if o >= uar::PAGE => {
                let reg_off = o % uar::PAGE;
                if reg_off == uar::EQ_DB_ARM || reg_off == uar::EQ_DB_NOARM {
                    let eqn = value >> 24;
                    if let Some(eq) = self.eqs.get_mut(&eqn) {
                        eq.ci = value & 0x00ff_ffff;
                    }
                }
            }
            _ => {}
        }
    }

    /// Processes the send doorbells queued while [`Model::defer_tx`] was set.
    pub fn run_deferred_tx(&mut self) {
        let queued = core::mem::take(&mut self.deferred_tx);
        for (sqn, uar_idx) in queued {
            self.transmit(sqn, uar_idx);
        }
    }

    fn write_reg64(&mut self, offset: usize, value: u64) {
        if self.faults.dead || offset < uar::PAGE {
            return;
        }
        let uar_idx = (offset / uar::PAGE) as u32;
        let reg_off = offset % uar::PAGE;
        if (uar::BF..uar::PAGE).contains(&reg_off) {
            self.stats.tx_doorbells += 1;
            let sqn = (value as u32) >> 8;
            if self.defer_tx {
                self.deferred_tx.push((sqn, uar_idx));
            } else {
                self.transmit(sqn, uar_idx);
            }
        }
    }

    // ---- command engine ----

    fn run_entry(&mut self, index: u32) {
        if self.faults.dead {
            return;
        }
        let entry_pa = self.cmdq + u64::from(index) * ce::SIZE as u64;
        let mut entry = [0u8; ce::SIZE];
        if !self.mem.read(entry_pa, &mut entry) {
            return;
        }
        let (delivery, record) = self.deliver(&mut entry);
        if self.faults.dead {
            return;
        }
        if let Some(rec) = record {
            if self.faults.hang_opcode == Some(rec.opcode) {
                self.log.push(rec);
                return;
            }
            self.log.push(rec);
        }
        entry[ce::STATUS_OWN] = delivery << 1;
        self.mem.write(entry_pa, &entry[..ce::STATUS_OWN]);
        self.mem
            .write(entry_pa + ce::STATUS_OWN as u64, &entry[ce::STATUS_OWN..]);
        self.stats.commands += 1;
    }

    /// Reads a mailbox chain of `len` data bytes; Err(delivery status).
    fn read_chain(&self, mut pa: u64, len: usize, token: u8, align_err: u8) -> Result<Vec<u8>, u8> {
        let mut data = Vec::with_capacity(len);
        let mut k = 0u32;
        while data.len() < len {
            if pa == 0 || !pa.is_multiple_of(mb::ALIGN as u64) {
                return Err(align_err);
            }
            let mut block = [0u8; mb::SIZE];
            if !self.mem.read(pa, &mut block) {
                return Err(align_err);
            }
            if read_be32(&block, mb::BLOCK_NUM) != k {
                return Err(0x03);
            }
            if block[mb::TOKEN] != token {
                return Err(0x02);
            }
            let take = (len - data.len()).min(mb::DATA_LEN);
            data.extend_from_slice(&block[..take]);
            pa = read_be64(&block, mb::NEXT);
            k += 1;
        }
        Ok(data)
    }

    fn deliver(&mut self, entry: &mut [u8; ce::SIZE]) -> (u8, Option<CommandRecord>) {
        if entry[ce::TYPE] != ce::PCI_CMD_XPORT || entry[ce::STATUS_OWN] & 1 == 0 {
            return (0x10, None);
        }
        if self.config.check_signature {
            let mut copy = *entry;
            copy[ce::SIGNATURE] = 0;
            if super::cmd::signature(&copy) != entry[ce::SIGNATURE] {
                return (0x01, None);
            }
        }
        let in_len = read_be32(entry, ce::IN_LEN) as usize;
        let out_len = read_be32(entry, ce::OUT_LEN) as usize;
        if in_len < 8 {
            return (0x07, None);
        }
        if out_len < 8 {
            return (0x08, None);
        }
        if in_len > (8 << 20) || out_len > (8 << 20) {
            return (0x07, None);
        }
        let posted = *entry;
        let token = entry[ce::TOKEN];
        let mut input = entry[ce::IN_INLINE..ce::IN_INLINE + ce::INLINE_LEN.min(in_len)].to_vec();
        if in_len > ce::INLINE_LEN {
            match self.read_chain(
                read_be64(entry, ce::IN_MBOX),
                in_len - ce::INLINE_LEN,
                token,
                0x05,
            ) {
                Ok(rest) => input.extend_from_slice(&rest),
                Err(d) => return (d, None),
            }
        }
        let opcode = hdr::OPCODE.get(&input) as u16;
        let op_mod = hdr::OP_MOD.get(&input) as u16;
        if self.faults.die_on_opcode == Some(opcode) {
            self.faults.dead = true;
            return (0, None);
        }
        // Output mailboxes must be pre-chained: validate before answering.
        let out_mbox = read_be64(entry, ce::OUT_MBOX);
        if out_len > ce::INLINE_LEN
            && let Err(d) = self.read_chain(out_mbox, out_len - ce::INLINE_LEN, token, 0x04)
        {
            return (d, None);
        }
        if let Some((o, d)) = self.faults.delivery_fail
            && o == opcode
        {
            return (d, None);
        }
        let replayed = self
            .responder
            .as_mut()
            .and_then(|r| r(opcode, op_mod, &input, out_len));
        let is_replay = replayed.is_some();
        let mut output = match replayed {
            Some(o) => {
                // Keep the model's state machine in step with the replayed device (enabled,
                // pages held, initialized); its own answer is discarded.
                let _ = self.execute(opcode, op_mod, &input, out_len);
                o
            }
            None => match self.faults.fail_opcode {
                Some((o, status, synd)) if o == opcode => {
                    let mut v = out(out_len);
                    hdr::STATUS.set(&mut v, u32::from(status));
                    hdr::SYNDROME.set(&mut v, synd);
                    v
                }
                _ => match self.execute(opcode, op_mod, &input, out_len) {
                    Ok(v) => v,
                    Err((status, synd)) => {
                        let mut v = out(out_len);
                        hdr::STATUS.set(&mut v, u32::from(status));
                        hdr::SYNDROME.set(&mut v, synd);
                        v
                    }
                },
            },
        };
        output.resize(out_len, 0);
        entry[ce::OUT_INLINE..ce::OUT_INLINE + ce::INLINE_LEN.min(out_len)]
            .copy_from_slice(&output[..ce::INLINE_LEN.min(out_len)]);
        // Scatter the rest into the output chain (validated above).
        let mut pa = out_mbox;
        let mut off = ce::INLINE_LEN;
        while off < out_len && pa != 0 {
            let take = (out_len - off).min(mb::DATA_LEN);
            self.mem.write(pa, &output[off..off + take]);
            let mut next = [0u8; 8];
            self.mem.read(pa + mb::NEXT as u64, &mut next);
            pa = u64::from_be_bytes(next);
            off += take;
        }
        let record = CommandRecord {
            entry: posted,
            replayed: is_replay,
            opcode,
            op_mod,
            input,
            output,
            delivery: 0,
            token,
        };
        (0, Some(record))
    }

    fn need_init(&self) -> Result<(), (u8, u32)> {
        if self.init_done {
            Ok(())
        } else {
            Err(BAD_SYS_STATE)
        }
    }

    fn alloc_id(&mut self) -> u32 {
        self.next_obj += 1;
        self.next_obj
    }

    fn ring_from(
        &self,
        input: &[u8],
        pas_off: usize,
        log_pg: u32,
        bytes: usize,
    ) -> Result<Ring, (u8, u32)> {
        let pg = PAGE_SIZE << log_pg.min(20);
        let n = bytes.div_ceil(pg).max(1);
        let mut pas = Vec::with_capacity(n);
        for i in 0..n {
            let pa = read_be64(input, pas_off + 8 * i);
            if !pa.is_multiple_of(PAGE_SIZE as u64) || !self.mem.valid(pa, pg.min(bytes)) {
                return Err(BAD_PARAM);
            }
            pas.push(pa);
        }
        Ok(Ring { pas, log_pg })
    }

    fn execute(&mut self, opcode: u16, op_mod: u16, input: &[u8], out_len: usize) -> CmdResult {
        let mut o = out(out_len);
        match opcode {
            op::ENABLE_HCA => {
                self.enabled = true;
            }
            op::DISABLE_HCA => {
                self.enabled = false;
            }
            op::NOP => {}
            op::QUERY_ISSI => {
                if !self.enabled {
                    return Err(BAD_SYS_STATE);
                }
                query_issi_out::CURRENT_ISSI.set(&mut o, self.issi);
                query_issi_out::SUPPORTED_ISSI_DW0.set(&mut o, 0b11);
            }
            op::SET_ISSI => {
                if !self.enabled {
                    return Err(BAD_SYS_STATE);
                }
                let issi = set_issi_in::CURRENT_ISSI.get(input);
                if issi > 1 {
                    return Err(BAD_PARAM);
                }
                self.issi = issi;
            }
            op::QUERY_PAGES => {
                if !self.enabled {
                    return Err(BAD_SYS_STATE);
                }
                let n = match op_mod {
                    1 => self.config.boot_pages,
                    2 => self.config.init_pages,
                    3 => self.config.regular_pages,
                    _ => return Err(BAD_PARAM),
                };
                let n = (n - self.faults.underreport_pages).max(0);
                self.pages_owed = n;
                query_pages_out::NUM_PAGES.set(&mut o, n as u32);
            }
            op::MANAGE_PAGES => {
                if !self.enabled {
                    return Err(BAD_SYS_STATE);
                }
                let n = manage_pages_in::INPUT_NUM_ENTRIES.get(input) as usize;
                match op_mod {
                    0 => {}
                    1 => {
                        if input.len() < manage_pages_in::PAS.off + 8 * n {
                            return Err(BAD_INPUT_LEN);
                        }
                        for i in 0..n {
                            let pa = read_be64(input, manage_pages_in::PAS.off + 8 * i);
                            if !pa.is_multiple_of(PAGE_SIZE as u64)
                                || !self.mem.valid(pa, PAGE_SIZE)
                            {
                                return Err(BAD_PARAM);
                            }
                        }
                        for i in 0..n {
                            self.pages
                                .insert(read_be64(input, manage_pages_in::PAS.off + 8 * i));
                        }
                        if self.pages_requested > 0 {
                            self.pages_requested = (self.pages_requested - n as i32).max(0);
                        }
                    }
                    2 => {
                        let allowed = (-self.pages_requested).max(0) as usize;
                        let give = n.min(allowed).min(self.pages.len());
                        let mut back = Vec::new();
                        for _ in 0..give {
                            if let Some(pa) = self.pages.pop_last() {
                                back.push(pa);
                            }
                        }
                        self.pages_requested += back.len() as i32;
                        let off = manage_pages_out::PAS.off;
                        o.resize(o.len().max(off + 8 * back.len()), 0);
                        manage_pages_out::OUTPUT_NUM_ENTRIES.set(&mut o, back.len() as u32);
                        for (i, pa) in back.iter().enumerate() {
                            write_be64(&mut o, off + 8 * i, *pa);
                        }
                    }
                    _ => return Err(BAD_PARAM),
                }
            }
            op::ACCESS_REG => return self.access_reg(op_mod, input, o),
            op::QUERY_HCA_CAP => {
                if !self.enabled {
                    return Err(BAD_SYS_STATE);
                }
                let base = query_hca_cap_out::CAPABILITY.off;
                o.resize(o.len().max(query_hca_cap_out::SIZE), 0);
                let cap = &mut o[base..];
                match op_mod >> 1 {
                    0 => {
                        use cmd_hca_cap as c;
                        c::PORT_TYPE.set(cap, 1);
                        c::NUM_PORTS.set(cap, 1);
                        c::ETH_NET_OFFLOADS.set(cap, 1);
                        c::NIC_FLOW_TABLE.set(cap, 1);
                        c::LOG_MAX_CQ_SZ.set(cap, 22);
                        c::LOG_MAX_CQ.set(cap, 24);
                        c::LOG_MAX_EQ_SZ.set(cap, 22);
                        c::LOG_MAX_EQ.set(cap, 9);
                        c::LOG_MAX_WQ_SZ.set(cap, 15);
                        c::LOG_BF_REG_SIZE.set(cap, 9);
                        c::LOG_MAX_QP.set(cap, if op_mod & 1 == 1 { 14 } else { 23 });
                        c::CMDIF_CHECKSUM.set(cap, 0);
                        c::LOG_PG_SZ.set(cap, 12);
                        c::UAR_SZ.set(cap, 8);
                    }
                    1 => {
                        per_protocol_networking_offload_caps::WQE_INLINE_MODE
                            .set(cap, self.config.wqe_inline_mode);
                    }
                    7 => {}
                    _ => return Err(BAD_PARAM),
                }
            }
            op::SET_HCA_CAP => {
                if !self.enabled {
                    return Err(BAD_SYS_STATE);
                }
                if input.len() < set_hca_cap_in::SIZE {
                    return Err(BAD_INPUT_LEN);
                }
            }
            op::INIT_HCA => {
                if !self.enabled || self.issi != 1 {
                    return Err(BAD_SYS_STATE);
                }
                let need = (self.config.boot_pages + self.config.init_pages).max(0) as usize;
                if self.pages.len() < need {
                    return Err(NO_RESOURCES);
                }
                self.init_done = true;
            }
            op::TEARDOWN_HCA => {
                self.need_init()?;
                self.init_done = false;
                self.eqs.clear();
                self.cqs.clear();
                self.sqs.clear();
                self.rqs.clear();
                self.tirs.clear();
                self.tables.clear();
                self.root = None;
                self.link_up = false;
            }
            op::ALLOC_UAR => {
                self.need_init()?;
                alloc_uar_out::UAR.set(&mut o, self.next_uar);
                self.next_uar += 1;
            }
            op::DEALLOC_UAR => self.need_init()?,
            op::ALLOC_PD => {
                self.need_init()?;
                let id = self.alloc_id();
                self.pds.insert(id);
                alloc_pd_out::PD.set(&mut o, id);
            }
            op::ALLOC_TRANSPORT_DOMAIN => {
                self.need_init()?;
                let id = self.alloc_id();
                self.tds.insert(id);
                alloc_transport_domain_out::TRANSPORT_DOMAIN.set(&mut o, id);
            }
            op::QUERY_SPECIAL_CONTEXTS => {
                self.need_init()?;
                query_special_contexts_out::RESD_LKEY.set(&mut o, self.config.resd_lkey);
            }
            op::CREATE_EQ => {
                self.need_init()?;
                use create_eq_in as e;
                let log_size = e::EQ_CONTEXT_ENTRY_LOG_EQ_SIZE.get(input) as u8;
                let log_pg = e::EQ_CONTEXT_ENTRY_LOG_PAGE_SIZE.get(input);
                if log_size > 22 {
                    return Err(BAD_PARAM);
                }
                let ring =
                    self.ring_from(input, e::PAS.off, log_pg, (1 << log_size) * eqe::SIZE)?;
                let mask = e::EVENT_BITMASK.get_u64(input);
                // EQ numbers from 0x10, as the real CX4 in the trace.
                let eqn = 0x10 + self.eqs.len() as u32;
                if eqn > 0xff {
                    return Err(NO_RESOURCES);
                }
                self.eqs.insert(
                    eqn,
                    EqObj {
                        ring,
                        log_size,
                        pi: 0,
                        ci: 0,
                        mask,
                    },
                );
                create_eq_out::EQ_NUMBER.set(&mut o, eqn);
            }
            op::CREATE_CQ => {
                self.need_init()?;
                use create_cq_in as c;
                let log_size = c::CQ_CONTEXT_LOG_CQ_SIZE.get(input) as u8;
                let eqn = c::CQ_CONTEXT_C_EQN_OR_APU_ELEMENT.get(input);
                if !self.eqs.contains_key(&eqn) {
                    return Err(BAD_RESOURCE);
                }
                if log_size > 22 {
                    return Err(BAD_PARAM);
                }
                let log_pg = c::CQ_CONTEXT_LOG_PAGE_SIZE.get(input);
                let ring =
                    self.ring_from(input, c::PAS.off, log_pg, (1 << log_size) * cqe::SIZE)?;
                let dbr = c::CQ_CONTEXT_DBR_ADDR.get_u64(input);
                if !self.mem.valid(dbr, 8) {
                    return Err(BAD_PARAM);
                }
                let cqn = self.alloc_id();
                self.cqs.insert(
                    cqn,
                    CqObj {
                        ring,
                        log_size,
                        pi: 0,
                        dbr,
                        error: false,
                    },
                );
                create_cq_out::CQN.set(&mut o, cqn);
            }
            op::CREATE_TIS => {
                self.need_init()?;
                if !self
                    .tds
                    .contains(&create_tis_in::CTX_TRANSPORT_DOMAIN.get(input))
                {
                    return Err(BAD_RESOURCE);
                }
                let id = self.alloc_id();
                self.tises.insert(id);
                create_tis_out::TISN.set(&mut o, id);
            }
            op::CREATE_SQ | op::CREATE_RQ => {
                self.need_init()?;
                if self.issi != 1 {
                    return Err(BAD_SYS_STATE);
                }
                let is_sq = opcode == op::CREATE_SQ;
                let base = create_sq_in::CTX_WQ.off;
                let cqn = create_sq_in::CTX_CQN.get(input);
                if !self.cqs.contains_key(&cqn) || !self.pds.contains(&wq::PD.at(base).get(input)) {
                    return Err(BAD_RESOURCE);
                }
                if is_sq && !self.tises.contains(&create_sq_in::CTX_TIS_NUM_0.get(input)) {
                    return Err(BAD_RESOURCE);
                }
                if wq::WQ_TYPE.at(base).get(input) != 1 {
                    return Err(BAD_PARAM);
                }
                let log_size = wq::LOG_WQ_SZ.at(base).get(input) as u8;
                let log_stride = wq::LOG_WQ_STRIDE.at(base).get(input);
                if log_size > 15 || !(4..=6).contains(&log_stride) {
                    return Err(BAD_PARAM);
                }
                let log_pg = wq::LOG_WQ_PG_SZ.at(base).get(input);
                let ring = self.ring_from(
                    input,
                    base + wq::PAS.off,
                    log_pg,
                    (1 << log_size) << log_stride,
                )?;
                let dbr = wq::DBR_ADDR.at(base).get_u64(input);
                if !self.mem.valid(dbr, 8) {
                    return Err(BAD_PARAM);
                }
                let obj = WqObj {
                    ring,
                    log_size,
                    log_stride,
                    dbr,
                    cqn,
                    state: 0,
                    rlky: create_sq_in::CTX_RLKY.get(input) == 1,
                    vsd: create_rq_in::CTX_VSD.get(input) == 1,
                    uar: wq::UAR_PAGE.at(base).get(input),
                    ci: 0,
                };
                let id = self.alloc_id();
                if is_sq {
                    self.sqs.insert(id, obj);
                    create_sq_out::SQN.set(&mut o, id);
                } else {
                    self.rqs.insert(id, obj);
                    create_rq_out::RQN.set(&mut o, id);
                }
            }
            op::MODIFY_SQ | op::MODIFY_RQ => {
                self.need_init()?;
                let num = modify_sq_in::SQN.get(input);
                let cur = modify_sq_in::SQ_STATE.get(input);
                let new = modify_sq_in::CTX_STATE.get(input);
                let map = if opcode == op::MODIFY_SQ {
                    &mut self.sqs
                } else {
                    &mut self.rqs
                };
                let Some(q) = map.get_mut(&num) else {
                    return Err(BAD_RESOURCE);
                };
                let allowed = matches!((cur, new), (0, 1) | (1, 3) | (3, 0) | (1, 0));
                if q.state != cur || !allowed {
                    return Err(BAD_RES_STATE);
                }
                q.state = new;
                if new == 0 {
                    q.ci = 0;
                }
            }
            op::CREATE_TIR => {
                self.need_init()?;
                let rqn = create_tir_in::CTX_INLINE_RQN.get(input);
                if create_tir_in::CTX_DISP_TYPE.get(input) != 0 || !self.rqs.contains_key(&rqn) {
                    return Err(BAD_RESOURCE);
                }
                if !self
                    .tds
                    .contains(&create_tir_in::CTX_TRANSPORT_DOMAIN.get(input))
                {
                    return Err(BAD_RESOURCE);
                }
                let id = self.alloc_id();
                self.tirs.insert(id, rqn);
                create_tir_out::TIRN.set(&mut o, id);
            }
            op::CREATE_FLOW_TABLE => {
                self.need_init()?;
                if create_flow_table_in::TABLE_TYPE.get(input) != 0 {
                    return Err(BAD_PARAM);
                }
                let id = self.alloc_id();
                self.tables.insert(id, FlowTable::default());
                create_flow_table_out::TABLE_ID.set(&mut o, id);
            }
            op::CREATE_FLOW_GROUP => {
                self.need_init()?;
                let tid = create_flow_group_in::TABLE_ID.get(input);
                let start = create_flow_group_in::START_FLOW_INDEX.get(input);
                let end = create_flow_group_in::END_FLOW_INDEX.get(input);
                let enable = create_flow_group_in::MATCH_CRITERIA_ENABLE.get(input) as u8;
                let c = create_flow_group_in::MATCH_CRITERIA_OUTER_HEADERS;
                let criteria = input
                    .get(c.off..c.off + c.len)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                let gid = self.alloc_id();
                let Some(t) = self.tables.get_mut(&tid) else {
                    return Err(BAD_RESOURCE);
                };
                if end < start || t.groups.iter().any(|g| start <= g.2 && g.1 <= end) {
                    return Err(BAD_PARAM);
                }
                t.groups.push((gid, start, end, enable, criteria));
                create_flow_group_out::GROUP_ID.set(&mut o, gid);
            }
            op::SET_FLOW_TABLE_ENTRY => {
                self.need_init()?;
                use set_fte_in as f;
                let tid = f::TABLE_ID.get(input);
                let index = f::FLOW_INDEX.get(input);
                let gid = f::FLOW_CONTEXT_GROUP_ID.get(input);
                let action = f::FLOW_CONTEXT_ACTION.get(input);
                let n = f::FLOW_CONTEXT_DESTINATION_LIST_SIZE.get(input) as usize;
                let mut dests = Vec::new();
                for i in 0..n.min(16) {
                    let off = f::FLOW_CONTEXT_DESTINATION.off + 8 * i;
                    let t = dest_format_struct::DESTINATION_TYPE.at(off).get(input) as u8;
                    let id = dest_format_struct::DESTINATION_ID.at(off).get(input);
                    let ok = match t {
                        2 => self.tirs.contains_key(&id),
                        1 => self.tables.contains_key(&id),
                        _ => false,
                    };
                    if !ok {
                        return Err(BAD_RESOURCE);
                    }
                    dests.push((t, id));
                }
                let m = f::FLOW_CONTEXT_MATCH_VALUE;
                let value = input
                    .get(m.off..m.off + 0x40)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                let Some(t) = self.tables.get_mut(&tid) else {
                    return Err(BAD_RESOURCE);
                };
                if !t
                    .groups
                    .iter()
                    .any(|g| g.0 == gid && g.1 <= index && index <= g.2)
                {
                    return Err(BAD_PARAM);
                }
                t.entries.insert(index, (gid, action, dests, value));
            }
            op::SET_FLOW_TABLE_ROOT => {
                self.need_init()?;
                let tid = set_flow_table_root_in::TABLE_ID.get(input);
                if !self.tables.contains_key(&tid) {
                    return Err(BAD_RESOURCE);
                }
                self.root = Some(tid);
            }
            op::QUERY_NIC_VPORT_CONTEXT => {
                self.need_init()?;
                o.resize(o.len().max(query_nic_vport_context_out::SIZE), 0);
                use query_nic_vport_context_out as q;
                q::NIC_VPORT_CONTEXT_MTU.set(&mut o, u32::from(self.vport_mtu));
                let p = q::NIC_VPORT_CONTEXT_PERMANENT_ADDRESS.off;
                o[p + 2..p + 8].copy_from_slice(&self.config.mac);
            }
            op::MODIFY_NIC_VPORT_CONTEXT => {
                self.need_init()?;
                use modify_nic_vport_context_in as m;
                if m::FIELD_SELECT_MTU.get(input) == 1 {
                    self.vport_mtu = m::NIC_VPORT_CONTEXT_MTU.get(input) as u16;
                }
                if m::FIELD_SELECT_PROMISC.get(input) == 1 {
                    self.promisc = m::NIC_VPORT_CONTEXT_PROMISC_ALL.get(input) == 1;
                }
            }
            op::QUERY_VPORT_STATE => {
                self.need_init()?;
                query_vport_state_out::STATE.set(&mut o, u32::from(self.link_up));
                query_vport_state_out::ADMIN_STATE.set(&mut o, u32::from(self.link_up));
            }
            _ => return Err(BAD_OP),
        }
        Ok(o)
    }

    fn access_reg(&mut self, op_mod: u16, input: &[u8], mut o: Vec<u8>) -> CmdResult {
        if !self.enabled {
            return Err(BAD_SYS_STATE);
        }
        let id = access_register_in::REGISTER_ID.get(input) as u16;
        let off = access_register_in::REGISTER_DATA.off;
        let data = input.get(off..).unwrap_or(&[]).to_vec();
        o.resize(o.len().max(off + data.len()), 0);
        o[off..off + data.len()].copy_from_slice(&data);
        let r = &mut o[off..];
        match (id, op_mod) {
            (reg::HOST_ENDIANNESS, 0) => {}
            (reg::PMTU, 1) => {
                self.need_init()?;
                pmtu_reg::MAX_MTU.set(r, u32::from(self.config.max_mtu));
                pmtu_reg::ADMIN_MTU.set(r, u32::from(self.admin_mtu));
                pmtu_reg::OPER_MTU.set(r, u32::from(self.admin_mtu));
            }
            (reg::PMTU, 0) => {
                self.need_init()?;
                let mtu = pmtu_reg::ADMIN_MTU.get(&data) as u16;
                if mtu > self.config.max_mtu {
                    return Err(BAD_PARAM);
                }
                self.admin_mtu = mtu;
            }
            (reg::PAOS, 0) => {
                self.need_init()?;
                if paos_reg::ASE.get(&data) == 1 {
                    let up = paos_reg::ADMIN_STATUS.get(&data) == 1;
                    if up != self.link_up {
                        self.link_up = up;
                        let sub = if up {
                            eqe::PORT_SUB_ACTIVE
                        } else {
                            eqe::PORT_SUB_DOWN
                        };
                        let mut e = [0u8; eqe::SIZE];
                        e[eqe::TYPE] = eqe::TYPE_PORT_CHANGE;
                        e[eqe::SUB_TYPE] = sub;
                        e[eqe::PORT] = 1 << 4;
                        self.post_event(e);
                    }
                }
            }
            (reg::PAOS, 1) => {
                paos_reg::ADMIN_STATUS.set(r, if self.link_up { 1 } else { 2 });
                paos_reg::OPER_STATUS.set(r, if self.link_up { 1 } else { 2 });
            }
            (reg::PTYS, 1) => {
                ptys_reg::ETH_PROTO_CAPABILITY.set(r, 0x0010_0000);
                ptys_reg::ETH_PROTO_OPER.set(r, if self.link_up { 0x0010_0000 } else { 0 });
            }
            _ => return Err(BAD_PARAM),
        }
        Ok(o)
    }

    // ---- events ----

    /// Posts an EQE on the first EQ subscribed to its type. False if none is.
    pub fn post_event(&mut self, mut e: [u8; eqe::SIZE]) -> bool {
        let t = e[eqe::TYPE];
        let Some(eq) = self
            .eqs
            .values_mut()
            .find(|q| t < 64 && q.mask & (1 << t) != 0)
        else {
            return false;
        };
        let size = 1u32 << eq.log_size;
        if eq.pi.wrapping_sub(eq.ci) >= size {
            self.stats.eq_overruns += 1;
            return false;
        }
        let off = (eq.pi & (size - 1)) as usize * eqe::SIZE;
        e[eqe::OWNER] = ((eq.pi >> eq.log_size) & 1) as u8;
        let pa = eq.ring.addr(off);
        eq.pi = eq.pi.wrapping_add(1);
        self.mem.write(pa, &e[..eqe::OWNER]);
        self.mem.write(pa + eqe::OWNER as u64, &e[eqe::OWNER..]);
        true
    }

    fn page_request(&mut self, pages: i32) -> bool {
        self.pages_requested += pages;
        let mut e = [0u8; eqe::SIZE];
        e[eqe::TYPE] = eqe::TYPE_PAGE_REQUEST;
        write_be32(&mut e, eqe::PAGE_NUM, pages as u32);
        self.post_event(e)
    }

    /// Writes a CQE (op_own last); on overrun posts a CQ error event instead.
    fn push_cqe(&mut self, cqn: u32, mut c: [u8; cqe::SIZE]) -> bool {
        let mem = self.mem;
        let Some(cq) = self.cqs.get_mut(&cqn) else {
            return false;
        };
        if cq.error {
            return false;
        }
        let size = 1u32 << cq.log_size;
        let consumer = mem.read_be32(cq.dbr) & 0x00ff_ffff;
        let used = (cq.pi & 0x00ff_ffff).wrapping_sub(consumer) & 0x00ff_ffff;
        if used >= size || self.faults.cq_full {
            cq.error = true;
            self.stats.cq_overruns += 1;
            let mut e = [0u8; eqe::SIZE];
            e[eqe::TYPE] = eqe::TYPE_CQ_ERROR;
            write_be32(&mut e, eqe::CQ_ERR_CQN, cqn);
            e[eqe::CQ_ERR_SYND] = 1;
            self.post_event(e);
            return false;
        }
        let off = (cq.pi & (size - 1)) as usize * cqe::SIZE;
        c[cqe::OP_OWN] |= ((cq.pi >> cq.log_size) & 1) as u8;
        let pa = cq.ring.addr(off);
        cq.pi = cq.pi.wrapping_add(1);
        mem.write(pa, &c[..cqe::OP_OWN]);
        mem.write(pa + cqe::OP_OWN as u64, &c[cqe::OP_OWN..]);
        true
    }

    // ---- TX engine ----

    fn transmit(&mut self, sqn: u32, uar_idx: u32) {
        let mem = self.mem;
        let lkey = self.config.resd_lkey;
        let inline_required = self.config.wqe_inline_mode == 0;
        let Some(sq) = self.sqs.get(&sqn) else {
            self.stats.doorbell_errors += 1;
            return;
        };
        if sq.state != 1 || sq.uar != uar_idx {
            self.stats.doorbell_errors += 1;
            return;
        }
        let pc = (mem.read_be32(sq.dbr + 4) & 0xffff) as u16;
        let (mut ci, log_size, cqn, rlky) = (sq.ci, sq.log_size, sq.cqn, sq.rlky);
        let ring = sq.ring.clone();
        let mask = (1u16 << log_size) - 1;
        let mut budget = 1u32 << log_size;
        while ci != pc && budget > 0 {
            budget -= 1;
            let mut w = [0u8; 4 * wqe::BB_SIZE];
            let base = usize::from(ci & mask);
            mem.read(ring.addr(base * wqe::BB_SIZE), &mut w[..wqe::BB_SIZE]);
            let ctrl = read_be32(&w, 0);
            let qpn_ds = read_be32(&w, 4);
            let ds = (qpn_ds & 0x3f) as usize;
            let bbs = ds.div_ceil(4).clamp(1, 4);
            for k in 1..bbs {
                let slot = (base + k) & usize::from(mask);
                let (lo, hi) = (k * wqe::BB_SIZE, (k + 1) * wqe::BB_SIZE);
                mem.read(ring.addr(slot * wqe::BB_SIZE), &mut w[lo..hi]);
            }
            let mut syndrome = 0u8;
            if ((ctrl >> 8) & 0xffff) as u16 != ci || qpn_ds >> 8 != sqn || !(2..=16).contains(&ds)
            {
                syndrome = 0x02;
            }
            let mut frame = Vec::new();
            if syndrome == 0 {
                let inline = (read_be32(&w, wqe::ETH_INLINE_SZ) >> 16) as usize & 0x3ff;
                let inline_end = wqe::ETH_INLINE + inline;
                let data_start = 0x20 + inline.saturating_sub(2).div_ceil(16) * 16;
                if data_start > ds * 16 {
                    syndrome = 0x02;
                } else {
                    frame.extend_from_slice(&w[wqe::ETH_INLINE..inline_end]);
                    let mut d = data_start;
                    while d + 16 <= ds * 16 {
                        let bc = read_be32(&w, d) as usize;
                        let key = read_be32(&w, d + 4);
                        let addr = read_be64(&w, d + 8);
                        if key != lkey || !rlky {
                            syndrome = cqe::SYND_LOCAL_PROT;
                            break;
                        }
                        let at = frame.len();
                        frame.resize(at + bc.min(16384), 0);
                        if !mem.read(addr, &mut frame[at..]) {
                            syndrome = cqe::SYND_LOCAL_PROT;
                            break;
                        }
                        d += 16;
                    }
                    if inline_required && inline < wqe::MIN_INLINE.min(frame.len()) {
                        syndrome = 0x02;
                    }
                }
            }
            if self.faults.tx_error_next {
                self.faults.tx_error_next = false;
                syndrome = cqe::SYND_LOCAL_PROT;
            }
            let mut c = [0u8; cqe::SIZE];
            write_be32(
                &mut c,
                cqe::SOP_DROP_QPN,
                (u32::from(wqe::OP_SEND) << 24) | sqn,
            );
            write_be32(&mut c, cqe::WQE_COUNTER, u32::from(ci) << 16);
            if syndrome != 0 {
                self.stats.wqe_errors += 1;
                c[cqe::SYNDROME] = syndrome;
                c[cqe::OP_OWN] = cqe::OP_REQ_ERR << 4;
                self.push_cqe(cqn, c);
                if let Some(sq) = self.sqs.get_mut(&sqn) {
                    sq.state = 3;
                    sq.ci = ci;
                }
                return;
            }
            self.stats.tx_frames += 1;
            if (w[wqe::CTRL_FM_CE_SE] >> 2) & 3 == 2 {
                c[cqe::OP_OWN] = cqe::OP_REQ << 4;
                self.push_cqe(cqn, c);
            }
            if self.config.loopback {
                self.receive(&frame);
            }
            self.wire_tx.push_back(frame);
            ci = ci.wrapping_add(bbs as u16);
        }
        if let Some(sq) = self.sqs.get_mut(&sqn) {
            sq.ci = ci;
        }
    }

    // ---- RX engine ----

    fn steer(&self, frame: &[u8]) -> Option<u32> {
        let mut table = self.root?;
        for _ in 0..4 {
            let t = self.tables.get(&table)?;
            // Outer headers of the frame in fte_match_set_lyr_2_4 layout.
            let mut hdrs = [0u8; 0x40];
            use fte_match_set_lyr_2_4 as l;
            let b = |i: usize| u32::from(frame.get(i).copied().unwrap_or(0));
            l::DMAC_47_16.set(&mut hdrs, (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3));
            l::DMAC_15_0.set(&mut hdrs, (b(4) << 8) | b(5));
            l::SMAC_47_16.set(&mut hdrs, (b(6) << 24) | (b(7) << 16) | (b(8) << 8) | b(9));
            l::SMAC_15_0.set(&mut hdrs, (b(10) << 8) | b(11));
            let mut ethertype = (b(12) << 8) | b(13);
            if ethertype == 0x8100 {
                l::CVLAN_TAG.set(&mut hdrs, 1);
                l::FIRST_VID.set(&mut hdrs, ((b(14) << 8) | b(15)) & 0xfff);
                l::FIRST_PRIO.set(&mut hdrs, b(14) >> 5);
                ethertype = (b(16) << 8) | b(17);
            }
            l::ETHERTYPE.set(&mut hdrs, ethertype);
            let mut next = None;
            for (gid, action, dests, value) in t.entries.values() {
                let Some(g) = t.groups.iter().find(|g| g.0 == *gid) else {
                    continue;
                };
                let matches = g.3 & 1 == 0
                    || (0..0x40).all(|i| {
                        let m = g.4.get(i).copied().unwrap_or(0);
                        hdrs[i] & m == value.get(i).copied().unwrap_or(0) & m
                    });
                if !matches {
                    continue;
                }
                if action & 4 == 0 {
                    return None;
                }
                match dests.first() {
                    Some((2, tir)) => return self.tirs.get(tir).copied(),
                    Some((1, ft)) => next = Some(*ft),
                    _ => return None,
                }
                break;
            }
            table = next?;
        }
        None
    }

    fn receive(&mut self, frame: &[u8]) -> bool {
        if self.faults.dead || !self.init_done {
            return false;
        }
        let Some(rqn) = self.steer(frame) else {
            self.stats.rx_dropped_no_steering += 1;
            return false;
        };
        let mem = self.mem;
        let lkey = self.config.resd_lkey;
        let Some(rq) = self.rqs.get_mut(&rqn) else {
            return false;
        };
        let posted = (mem.read_be32(rq.dbr) & 0xffff) as u16;
        if rq.state != 1 || rq.ci == posted {
            self.stats.rx_out_of_buffer += 1;
            return false;
        }
        let mut data: Vec<u8> = frame.to_vec();
        let mut c = [0u8; cqe::SIZE];
        if !rq.vsd && data.len() >= 18 && data[12] == 0x81 && data[13] == 0x00 {
            c[cqe::L4_L3_HDR_TYPE] |= 1;
            c[cqe::VLAN_INFO] = data[14];
            c[cqe::VLAN_INFO + 1] = data[15];
            data.drain(12..16);
        }
        let mask = (1u16 << rq.log_size) - 1;
        let stride = 1usize << rq.log_stride;
        let wqe_pa = rq.ring.addr(usize::from(rq.ci & mask) * stride);
        let mut w = vec![0u8; stride];
        mem.read(wqe_pa, &mut w);
        let mut done = 0usize;
        let mut syndrome = 0u8;
        for seg in w.as_chunks::<16>().0 {
            if done == data.len() {
                break;
            }
            let bc = read_be32(seg, 0) as usize;
            let key = read_be32(seg, 4);
            let addr = read_be64(seg, 8);
            if key == 0x100 && key != lkey {
                break; // terminate scatter list
            }
            if key != lkey || !rq.rlky {
                syndrome = cqe::SYND_LOCAL_PROT;
                break;
            }
            let n = bc.min(data.len() - done);
            if !mem.write(addr, &data[done..done + n]) {
                syndrome = cqe::SYND_LOCAL_PROT;
                break;
            }
            done += n;
        }
        if syndrome == 0 && done < data.len() {
            syndrome = cqe::SYND_LOCAL_LENGTH;
        }
        write_be32(&mut c, cqe::BYTE_CNT, data.len() as u32);
        write_be32(&mut c, cqe::SOP_DROP_QPN, rqn);
        write_be32(&mut c, cqe::WQE_COUNTER, u32::from(rq.ci) << 16);
        if syndrome != 0 {
            c[cqe::SYNDROME] = syndrome;
            c[cqe::OP_OWN] = cqe::OP_RESP_ERR << 4;
        } else {
            c[cqe::OP_OWN] = cqe::OP_RESP_SEND << 4;
        }
        rq.ci = rq.ci.wrapping_add(1);
        let cqn = rq.cqn;
        let ok = self.push_cqe(cqn, c) && syndrome == 0;
        if ok {
            self.stats.rx_frames += 1;
        }
        ok
    }
}
