//! [`Mlx5Port`]: one ConnectX Ethernet port behind the [`Nic`] trait, like `VirtioNetPort`.
//!
//! Queues (docs/mlx5.md §4.3–4.5, §5): an RX CQ and a TX CQ on the async EQ; a TIS; a cyclic
//! SQ of 64-byte WQEBBs; a cyclic RQ with one data segment per WQE, `vsd` = 1 so VLAN tags stay
//! in the frame; a direct TIR; a root NIC receive flow table with one wildcard group and one
//! entry forwarding everything to the TIR; promiscuous vport; MTU; PAOS admin up. Buffers are
//! addressed physically through the reserved lkey (`rlky` on SQ and RQ).
//!
//! Data path: `rx_burst` reaps RX CQEs (ownership parity), hands the buffers over with the
//! frame at the pool's headroom, reposts fresh buffers and writes the RQ doorbell record once.
//! `tx_burst` reaps TX completions first, then writes one WQE per frame (control segment,
//! Ethernet segment with 18 inlined header bytes, one pointer segment for the rest), asks for
//! a completion on the last WQE only, and rings one doorbell per burst (doorbell record, then
//! a 64-bit write of the last control segment's first 8 bytes to the UAR BlueFlame register).
//!
//! Faults: a fatal health condition, a dead device, an error CQE on the SQ, or a CQ error event
//! put the port in [`Mlx5Port::fault`]: link down, bursts return 0, nothing panics, commands
//! stop. The rest of the switch keeps running.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::sync::atomic::{Ordering, fence};

use log::{error, info, warn};

use super::cmd::{self, CmdError};
use super::health::HealthError;
use super::init::{Hca, HcaConfig, pas_of, put_pas};
use super::layouts::ifc::*;
use super::layouts::{Field, cqe, op, reg, uar, wqe};
use super::queues::{Cq, Event, Wq};
use super::{DmaMem, Mlx5Error, Mlx5Hw};
use crate::dma::{PAGE_SIZE, PacketBatch, PacketPool};
use crate::nic::{Nic, NicStats};
use switch_core::packet::Frame;

/// Port settings.
#[derive(Clone, Copy, Debug)]
pub struct Mlx5Config {
    /// log2 of the RQ size in WQEs (and of the RX CQ).
    pub log_rq_size: u8,
    /// log2 of the SQ size in WQEBBs (and of the TX CQ).
    pub log_sq_size: u8,
    /// Software (L3) MTU; the device gets MTU + 22 (L2 + VLAN + FCS).
    pub mtu: u16,
    /// Health and event polling happens every this many bursts (and on `link_up`).
    pub service_interval: u32,
    pub hca: HcaConfig,
}

impl Default for Mlx5Config {
    fn default() -> Self {
        Mlx5Config {
            log_rq_size: 8,
            log_sq_size: 8,
            mtu: 1500,
            service_interval: 4096,
            hca: HcaConfig::default(),
        }
    }
}

/// Why the port went down for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortFault {
    Health(HealthError),
    /// A command failed while servicing the port (page request, link query).
    Command(CmdError),
    /// The device reported a CQ error (overrun or access violation) on this CQ.
    CqError {
        cqn: u32,
        syndrome: u8,
    },
    /// The SQ completed with an error (the SQ is in ERR state).
    SendError {
        syndrome: u8,
    },
    /// A WQ catastrophic or internal-error event.
    FatalEvent(u8),
}

impl fmt::Display for PortFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortFault::Health(h) => write!(f, "{h}"),
            PortFault::Command(c) => write!(f, "{c}"),
            PortFault::CqError { cqn, syndrome } => {
                write!(f, "CQ {cqn:#x} error, syndrome {syndrome:#x}")
            }
            PortFault::SendError { syndrome } => write!(f, "send error, syndrome {syndrome:#x}"),
            PortFault::FatalEvent(t) => write!(f, "fatal event {t:#x}"),
        }
    }
}

/// Doorbell record offsets in the port's doorbell page.
const DBR_RX_CQ: usize = 0x00;
const DBR_TX_CQ: usize = 0x40;
const DBR_RQ: usize = 0x80;
/// The SQ's record; its counter is at +4 (MLX5_SND_DBR).
const DBR_SQ: usize = 0xc0;
const RQ_STRIDE: usize = 16;
/// Smallest frame accepted from the device (an Ethernet header).
const MIN_RX_FRAME: usize = 14;
const PTYS_SPEEDS: &[(u32, u32)] = &[
    (1 << 1, 1_000),
    (1 << 2, 10_000),
    (1 << 3, 10_000),
    (1 << 4, 10_000),
    (1 << 12, 10_000),
    (1 << 14, 10_000),
    (1 << 6, 40_000),
    (1 << 7, 40_000),
    (1 << 15, 50_000),
    (1 << 16, 40_000),
    (1 << 18, 50_000),
    (1 << 20, 100_000),
    (1 << 21, 100_000),
    (1 << 22, 100_000),
    (1 << 23, 100_000),
    (1 << 27, 25_000),
    (1 << 28, 25_000),
    (1 << 29, 25_000),
    (1 << 30, 50_000),
    (1 << 31, 50_000),
];

/// One mlx5 Ethernet port (one PCI function), poll mode, one RX and one TX queue.
pub struct Mlx5Port<H: Mlx5Hw> {
    name: heapless::String<32>,
    mac: [u8; 6],
    pool: Rc<PacketPool>,
    rx_cq: Cq,
    tx_cq: Cq,
    rq: Wq,
    sq: Wq,
    dbr: DmaMem,
    sqn: u32,
    rqn: u32,
    tisn: u32,
    tirn: u32,
    flow_table: u32,
    /// Bytes the device may scatter into one receive buffer.
    rx_room: u32,
    /// Largest frame `tx_burst` accepts.
    max_tx_frame: usize,
    hw_mtu: u16,
    speed_mbps: u32,
    link: bool,
    fault: Option<PortFault>,
    bursts: u32,
    service_interval: u32,
    stats: NicStats,
    /// Declared last: drops (tears down) after the port's own Drop ran, before nothing else
    /// needs it; rings above are freed after the HCA is torn down (see `Drop`).
    hca: Hca<H>,
}

impl<H: Mlx5Hw> Mlx5Port<H> {
    /// Brings up the HCA behind `hw` and the port's queues and steering; posts receive buffers
    /// from `pool`. `label` names the port in logs (the PCI address); [`Nic::name`] is
    /// `"mlx5 <label>"`.
    pub fn new(
        hw: H,
        pool: Rc<PacketPool>,
        label: &str,
        config: Mlx5Config,
    ) -> Result<Self, Mlx5Error> {
        let mut hca = Hca::bring_up(hw, config.hca)?;
        let alloc = hca.hw.allocator();
        let log_max_wq = hca.caps.log_max_wq_sz.clamp(1, 15) as u8;
        let log_max_cq = hca.caps.log_max_cq_sz.clamp(1, 24) as u8;
        let log_rq = config.log_rq_size.clamp(1, log_max_wq.min(log_max_cq));
        let log_sq = config.log_sq_size.clamp(1, log_max_wq.min(log_max_cq));
        let oom = Mlx5Error::OutOfDmaMemory;
        let dbr = DmaMem::alloc(alloc, PAGE_SIZE).ok_or(oom.clone())?;
        let mut rx_cq = Cq::new(alloc, log_rq).ok_or(oom.clone())?;
        let mut tx_cq = Cq::new(alloc, log_sq).ok_or(oom.clone())?;
        let mut rq = Wq::new(alloc, log_rq, RQ_STRIDE).ok_or(oom.clone())?;
        let mut sq = Wq::new(alloc, log_sq, wqe::BB_SIZE).ok_or(oom)?;

        // Vport: MAC and inline mode; MTU; promiscuous.
        let out = hca.exec(
            &cmd::input(
                op::QUERY_NIC_VPORT_CONTEXT,
                0,
                query_nic_vport_context_in::SIZE,
            ),
            query_nic_vport_context_out::SIZE,
        )?;
        let perm = query_nic_vport_context_out::NIC_VPORT_CONTEXT_PERMANENT_ADDRESS.off;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&out[perm + 2..perm + 8]);

        let mut hw_mtu = config.mtu.saturating_add(22);
        let pmtu = access_reg(&mut hca, reg::PMTU, 1, &local_port_reg(pmtu_reg::SIZE))?;
        let max_mtu = pmtu_reg::MAX_MTU.get(&pmtu) as u16;
        if max_mtu != 0 && hw_mtu > max_mtu {
            warn!("mlx5 {label}: MTU {hw_mtu} above the port's {max_mtu}; using {max_mtu}");
            hw_mtu = max_mtu;
        }
        let mut pmtu_w = local_port_reg(pmtu_reg::SIZE);
        pmtu_reg::ADMIN_MTU.set(&mut pmtu_w, u32::from(hw_mtu));
        access_reg(&mut hca, reg::PMTU, 0, &pmtu_w)?;

        let mut vport = cmd::input(
            op::MODIFY_NIC_VPORT_CONTEXT,
            0,
            modify_nic_vport_context_in::SIZE,
        );
        modify_nic_vport_context_in::FIELD_SELECT_MTU.set(&mut vport, 1);
        modify_nic_vport_context_in::FIELD_SELECT_PROMISC.set(&mut vport, 1);
        modify_nic_vport_context_in::NIC_VPORT_CONTEXT_MTU.set(&mut vport, u32::from(hw_mtu));
        modify_nic_vport_context_in::NIC_VPORT_CONTEXT_PROMISC_UC.set(&mut vport, 1);
        modify_nic_vport_context_in::NIC_VPORT_CONTEXT_PROMISC_MC.set(&mut vport, 1);
        modify_nic_vport_context_in::NIC_VPORT_CONTEXT_PROMISC_ALL.set(&mut vport, 1);
        hca.exec(&vport, 0x10)?;

        let eqn = hca.eq.as_ref().map_or(0, |e| e.eqn);
        rx_cq.cqn = create_cq(&mut hca, &rx_cq, eqn, dbr.phys() + DBR_RX_CQ as u64)?;
        tx_cq.cqn = create_cq(&mut hca, &tx_cq, eqn, dbr.phys() + DBR_TX_CQ as u64)?;

        let mut tis = cmd::input(op::CREATE_TIS, 0, create_tis_in::SIZE);
        create_tis_in::CTX_TRANSPORT_DOMAIN.set(&mut tis, hca.td);
        let out = hca.exec(&tis, create_tis_out::SIZE)?;
        let tisn = create_tis_out::TISN.get(&out);

        // SQ
        let sq_bytes = (1usize << log_sq) * wqe::BB_SIZE;
        let (log_pg, pas) = pas_of(&sq.mem, sq_bytes);
        let wq_base = create_sq_in::CTX_WQ.off;
        let mut input = cmd::input(op::CREATE_SQ, 0, create_sq_in::SIZE + 8 * pas.len());
        create_sq_in::CTX_RLKY.set(&mut input, 1);
        create_sq_in::CTX_FLUSH_IN_ERROR_EN.set(&mut input, 1);
        let inline_mode = if hca.caps.wqe_inline_mode == 2 { 0 } else { 1 };
        create_sq_in::CTX_MIN_WQE_INLINE_MODE.set(&mut input, inline_mode);
        create_sq_in::CTX_CQN.set(&mut input, tx_cq.cqn);
        create_sq_in::CTX_TIS_LST_SZ.set(&mut input, 1);
        create_sq_in::CTX_TIS_NUM_0.set(&mut input, tisn);
        set_wq(
            &mut input,
            wq_base,
            &hca,
            dbr.phys() + DBR_SQ as u64,
            6,
            log_pg,
            log_sq,
            true,
        );
        put_pas(&mut input, wq_base + wq::PAS.off, &pas);
        let out = hca.exec(&input, create_sq_out::SIZE)?;
        let sqn = create_sq_out::SQN.get(&out);
        sq.num = sqn;

        // RQ
        let rq_bytes = (1usize << log_rq) * RQ_STRIDE;
        let (log_pg, pas) = pas_of(&rq.mem, rq_bytes);
        let wq_base = create_rq_in::CTX_WQ.off;
        let mut input = cmd::input(op::CREATE_RQ, 0, create_rq_in::SIZE + 8 * pas.len());
        create_rq_in::CTX_RLKY.set(&mut input, 1);
        create_rq_in::CTX_VSD.set(&mut input, 1);
        create_rq_in::CTX_CQN.set(&mut input, rx_cq.cqn);
        set_wq(
            &mut input,
            wq_base,
            &hca,
            dbr.phys() + DBR_RQ as u64,
            4,
            log_pg,
            log_rq,
            false,
        );
        put_pas(&mut input, wq_base + wq::PAS.off, &pas);
        let out = hca.exec(&input, create_rq_out::SIZE)?;
        let rqn = create_rq_out::RQN.get(&out);
        rq.num = rqn;

        modify_state(
            &mut hca,
            op::MODIFY_SQ,
            sqn,
            modify_sq_in::SQ_STATE,
            modify_sq_in::SQN,
            modify_sq_in::CTX_STATE,
            0,
            1,
        )?;
        modify_state(
            &mut hca,
            op::MODIFY_RQ,
            rqn,
            modify_rq_in::RQ_STATE,
            modify_rq_in::RQN,
            modify_rq_in::CTX_STATE,
            0,
            1,
        )?;

        // Steering: TIR -> RQ, root table with one wildcard entry -> TIR.
        let mut tir = cmd::input(op::CREATE_TIR, 0, create_tir_in::SIZE);
        create_tir_in::CTX_DISP_TYPE.set(&mut tir, 0);
        create_tir_in::CTX_INLINE_RQN.set(&mut tir, rqn);
        create_tir_in::CTX_TRANSPORT_DOMAIN.set(&mut tir, hca.td);
        let out = hca.exec(&tir, create_tir_out::SIZE)?;
        let tirn = create_tir_out::TIRN.get(&out);

        let mut ft = cmd::input(op::CREATE_FLOW_TABLE, 0, create_flow_table_in::SIZE);
        create_flow_table_in::TABLE_TYPE.set(&mut ft, 0);
        create_flow_table_in::FLOW_TABLE_CONTEXT_LEVEL.set(&mut ft, 0);
        create_flow_table_in::FLOW_TABLE_CONTEXT_LOG_SIZE.set(&mut ft, 0);
        let out = hca.exec(&ft, create_flow_table_out::SIZE)?;
        let flow_table = create_flow_table_out::TABLE_ID.get(&out);

        let mut fg = cmd::input(op::CREATE_FLOW_GROUP, 0, create_flow_group_in::SIZE);
        create_flow_group_in::TABLE_TYPE.set(&mut fg, 0);
        create_flow_group_in::TABLE_ID.set(&mut fg, flow_table);
        create_flow_group_in::START_FLOW_INDEX.set(&mut fg, 0);
        create_flow_group_in::END_FLOW_INDEX.set(&mut fg, 0);
        create_flow_group_in::MATCH_CRITERIA_ENABLE.set(&mut fg, 0);
        let out = hca.exec(&fg, create_flow_group_out::SIZE)?;
        let group = create_flow_group_out::GROUP_ID.get(&out);

        let dest = set_fte_in::FLOW_CONTEXT_DESTINATION.off;
        let mut fte = cmd::input(op::SET_FLOW_TABLE_ENTRY, 0, dest + dest_format_struct::SIZE);
        set_fte_in::TABLE_TYPE.set(&mut fte, 0);
        set_fte_in::TABLE_ID.set(&mut fte, flow_table);
        set_fte_in::FLOW_INDEX.set(&mut fte, 0);
        set_fte_in::FLOW_CONTEXT_GROUP_ID.set(&mut fte, group);
        set_fte_in::FLOW_CONTEXT_ACTION.set(&mut fte, 4);
        set_fte_in::FLOW_CONTEXT_DESTINATION_LIST_SIZE.set(&mut fte, 1);
        dest_format_struct::DESTINATION_TYPE
            .at(dest)
            .set(&mut fte, 2);
        dest_format_struct::DESTINATION_ID
            .at(dest)
            .set(&mut fte, tirn);
        hca.exec(&fte, 0x10)?;

        let mut root = cmd::input(op::SET_FLOW_TABLE_ROOT, 0, set_flow_table_root_in::SIZE);
        set_flow_table_root_in::TABLE_TYPE.set(&mut root, 0);
        set_flow_table_root_in::TABLE_ID.set(&mut root, flow_table);
        hca.exec(&root, 0x10)?;

        // Port admin up (PAOS with ase).
        let mut paos = local_port_reg(paos_reg::SIZE);
        paos_reg::ADMIN_STATUS.set(&mut paos, 1);
        paos_reg::ASE.set(&mut paos, 1);
        access_reg(&mut hca, reg::PAOS, 0, &paos)?;

        let headroom = pool.headroom();
        let rx_room = (pool.buf_size() - headroom) as u32;
        let mut name = heapless::String::new();
        let _ = write!(name, "mlx5 {label}");
        let mut port = Mlx5Port {
            name,
            mac,
            pool,
            rx_cq,
            tx_cq,
            rq,
            sq,
            dbr,
            sqn,
            rqn,
            tisn,
            tirn,
            flow_table,
            rx_room,
            max_tx_frame: usize::from(hw_mtu) - 4,
            hw_mtu,
            speed_mbps: 0,
            link: false,
            fault: None,
            bursts: 0,
            service_interval: config.service_interval.max(1),
            stats: NicStats::default(),
            hca,
        };
        port.refill_rx();
        port.link = port.query_link().unwrap_or(false);
        port.speed_mbps = port.query_speed().unwrap_or(0);
        info!(
            "{}: {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, mtu {} (hw {}), rq {} sq {} entries, \
             {} rx buffers posted, link {}, {} Mb/s",
            port.name,
            mac[0],
            mac[1],
            mac[2],
            mac[3],
            mac[4],
            mac[5],
            config.mtu,
            hw_mtu,
            port.rq.size(),
            port.sq.size(),
            port.rq.in_flight(),
            if port.link { "up" } else { "down" },
            port.speed_mbps
        );
        Ok(port)
    }

    /// Why the port is down for good, if it is.
    pub fn fault(&self) -> Option<PortFault> {
        self.fault
    }

    /// The HCA (pages, caps, command counters) for diagnostics and tests.
    pub fn hca(&self) -> &Hca<H> {
        &self.hca
    }

    /// The hardware access object.
    pub fn hw(&mut self) -> &mut H {
        &mut self.hca.hw
    }

    /// Receive buffers posted to the device.
    pub fn rx_posted(&self) -> usize {
        usize::from(self.rq.in_flight())
    }

    /// Transmit WQEBBs not yet completed.
    pub fn tx_in_flight(&self) -> usize {
        usize::from(self.sq.in_flight())
    }

    /// Link speed from PTYS at bring-up (0 if unknown).
    pub fn speed_mbps(&self) -> u32 {
        self.speed_mbps
    }

    /// Hardware MTU in use (L2 + VLAN + FCS included).
    pub fn hw_mtu(&self) -> u16 {
        self.hw_mtu
    }

    /// Object numbers (sqn, rqn, tisn, tirn, flow table) for diagnostics.
    pub fn objects(&self) -> (u32, u32, u32, u32, u32) {
        (self.sqn, self.rqn, self.tisn, self.tirn, self.flow_table)
    }

    fn set_fault(&mut self, fault: PortFault) {
        if self.fault.is_none() {
            error!("{}: port down: {fault}", self.name);
            self.fault = Some(fault);
            self.link = false;
        }
    }

    /// Slow-path work: health, async events (page requests answered, port changes, errors).
    /// Runs from `link_up` and every `service_interval` bursts. Returns false if the port is
    /// (now) faulted.
    pub fn service(&mut self) -> bool {
        if self.fault.is_some() {
            return false;
        }
        if let Err(h) = self.hca.poll_health() {
            self.set_fault(PortFault::Health(h));
            return false;
        }
        match self.hca.poll_events() {
            Ok(events) => {
                for event in events {
                    match event {
                        Event::PortChange { up } => self.link = up,
                        Event::CqError { cqn, syndrome } => {
                            self.set_fault(PortFault::CqError { cqn, syndrome })
                        }
                        Event::Fatal { event_type } => {
                            self.set_fault(PortFault::FatalEvent(event_type))
                        }
                        Event::PageRequest { .. } | Event::Other { .. } => {}
                    }
                }
            }
            Err(Mlx5Error::Health(h)) => self.set_fault(PortFault::Health(h)),
            Err(Mlx5Error::Cmd(c)) => self.set_fault(PortFault::Command(c)),
            Err(e) => warn!("{}: page request: {e}", self.name),
        }
        self.fault.is_none()
    }

    fn query_link(&mut self) -> Result<bool, CmdError> {
        let out = self.hca.exec(
            &cmd::input(op::QUERY_VPORT_STATE, 0, query_vport_state_in::SIZE),
            query_vport_state_out::SIZE,
        )?;
        Ok(query_vport_state_out::STATE.get(&out) == 1)
    }

    fn query_speed(&mut self) -> Result<u32, CmdError> {
        let mut ptys = local_port_reg(ptys_reg::SIZE);
        ptys_reg::PROTO_MASK.set(&mut ptys, 4);
        let out = access_reg(&mut self.hca, reg::PTYS, 1, &ptys)?;
        let oper = ptys_reg::ETH_PROTO_OPER.get(&out);
        Ok(PTYS_SPEEDS
            .iter()
            .find(|(bit, _)| oper & bit != 0)
            .map_or(0, |(_, speed)| *speed))
    }

    /// Posts fresh buffers on every free RQ slot and publishes them with one doorbell-record
    /// write (no MMIO needed for RX).
    fn refill_rx(&mut self) {
        let lkey = self.hca.resd_lkey;
        let headroom = self.pool.headroom() as u64;
        let mut posted = false;
        while self.rq.in_flight() < self.rq.size() {
            let Some(buf) = self.pool.alloc() else {
                self.stats.rx_no_buffer += 1;
                break;
            };
            let slot = usize::from(self.rq.pc & self.rq.mask());
            let mut seg = [0u8; RQ_STRIDE];
            seg[0..4].copy_from_slice(&self.rx_room.to_be_bytes());
            seg[4..8].copy_from_slice(&lkey.to_be_bytes());
            seg[8..16].copy_from_slice(&(buf.buf_phys() + headroom).to_be_bytes());
            self.rq.mem.write_array(slot * RQ_STRIDE, seg);
            self.rq.bufs[slot] = Some(buf);
            self.rq.pc = self.rq.pc.wrapping_add(1);
            posted = true;
        }
        if posted {
            fence(Ordering::Release);
            self.dbr.write_be32(DBR_RQ, u32::from(self.rq.pc));
        }
    }

    /// Reaps TX completions: each CQE retires every WQE up to and including its wqe_counter.
    fn reclaim_tx(&mut self) -> usize {
        let mut reclaimed = 0;
        let mut seen = false;
        for _ in 0..self.tx_cq_budget() {
            let Some(c) = self.tx_cq.pop() else { break };
            seen = true;
            if c.opcode == cqe::OP_REQ_ERR {
                self.stats.tx_errors += 1;
                self.set_fault(PortFault::SendError {
                    syndrome: c.syndrome,
                });
                break;
            }
            let outstanding = self.sq.in_flight();
            let done = c.wqe_counter.wrapping_sub(self.sq.cc).wrapping_add(1);
            if c.opcode != cqe::OP_REQ || c.qpn != self.sqn || done == 0 || done > outstanding {
                self.stats.tx_errors += 1;
                continue;
            }
            for _ in 0..done {
                let slot = usize::from(self.sq.cc & self.sq.mask());
                if self.sq.bufs[slot].take().is_some() {
                    reclaimed += 1;
                }
                self.sq.cc = self.sq.cc.wrapping_add(1);
            }
        }
        if seen {
            self.dbr.write_be32(DBR_TX_CQ, self.tx_cq.ci & 0x00ff_ffff);
        }
        reclaimed
    }

    fn tx_cq_budget(&self) -> u32 {
        1 << self.tx_cq.log_size
    }

    fn tick(&mut self) -> bool {
        self.bursts = self.bursts.wrapping_add(1);
        if self.bursts.is_multiple_of(self.service_interval) {
            return self.service();
        }
        self.fault.is_none()
    }
}

/// A register buffer of `size` bytes with local_port = 1.
fn local_port_reg(size: usize) -> Vec<u8> {
    let mut r = alloc::vec![0u8; size];
    Field::new(0, 23, 16).set(&mut r, 1);
    r
}

/// ACCESS_REGISTER: op_mod 0 write, 1 read; returns the register data.
fn access_reg<H: Mlx5Hw>(
    hca: &mut Hca<H>,
    id: u16,
    op_mod: u16,
    data: &[u8],
) -> Result<Vec<u8>, CmdError> {
    let off = access_register_in::REGISTER_DATA.off;
    let mut input = cmd::input(op::ACCESS_REG, op_mod, off + data.len());
    access_register_in::REGISTER_ID.set(&mut input, u32::from(id));
    input[off..].copy_from_slice(data);
    let out = hca.exec(&input, off + data.len())?;
    Ok(out[off..].to_vec())
}

fn create_cq<H: Mlx5Hw>(hca: &mut Hca<H>, cq: &Cq, eqn: u32, dbr: u64) -> Result<u32, CmdError> {
    let bytes = (1usize << cq.log_size) * cqe::SIZE;
    let (log_pg, pas) = pas_of(&cq.mem, bytes);
    let mut input = cmd::input(op::CREATE_CQ, 0, create_cq_in::PAS.off + 8 * pas.len());
    create_cq_in::CQ_CONTEXT_LOG_CQ_SIZE.set(&mut input, u32::from(cq.log_size));
    create_cq_in::CQ_CONTEXT_UAR_PAGE.set(&mut input, hca.uar);
    create_cq_in::CQ_CONTEXT_C_EQN_OR_APU_ELEMENT.set(&mut input, eqn);
    create_cq_in::CQ_CONTEXT_LOG_PAGE_SIZE.set(&mut input, log_pg);
    create_cq_in::CQ_CONTEXT_DBR_ADDR.set_u64(&mut input, dbr);
    put_pas(&mut input, create_cq_in::PAS.off, &pas);
    let out = hca.exec(&input, create_cq_out::SIZE)?;
    Ok(create_cq_out::CQN.get(&out))
}

#[allow(clippy::too_many_arguments)]
fn set_wq<H: Mlx5Hw>(
    input: &mut [u8],
    base: usize,
    hca: &Hca<H>,
    dbr: u64,
    log_stride: u32,
    log_pg: u32,
    log_size: u8,
    send: bool,
) {
    wq::WQ_TYPE.at(base).set(input, 1);
    wq::PD.at(base).set(input, hca.pd);
    if send {
        wq::UAR_PAGE.at(base).set(input, hca.uar);
    }
    Bytes8(wq::DBR_ADDR.off + base).set(input, dbr);
    wq::LOG_WQ_STRIDE.at(base).set(input, log_stride);
    wq::LOG_WQ_PG_SZ.at(base).set(input, log_pg);
    wq::LOG_WQ_SZ.at(base).set(input, u32::from(log_size));
}

struct Bytes8(usize);

impl Bytes8 {
    fn set(self, buf: &mut [u8], value: u64) {
        super::layouts::write_be64(buf, self.0, value);
    }
}

#[allow(clippy::too_many_arguments)]
fn modify_state<H: Mlx5Hw>(
    hca: &mut Hca<H>,
    opcode: u16,
    num: u32,
    cur_field: Field,
    num_field: Field,
    new_field: Field,
    cur: u32,
    new: u32,
) -> Result<(), CmdError> {
    let mut input = cmd::input(opcode, 0, modify_sq_in::SIZE);
    cur_field.set(&mut input, cur);
    num_field.set(&mut input, num);
    new_field.set(&mut input, new);
    hca.exec(&input, 0x10).map(|_| ())
}

impl<H: Mlx5Hw> Nic for Mlx5Port<H> {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    /// Services the port (health, events, page requests), then asks the device for the vport
    /// state. Down for good after a fault.
    fn link_up(&mut self) -> bool {
        if !self.service() {
            return false;
        }
        match self.query_link() {
            Ok(up) => self.link = up,
            Err(CmdError::Health(h)) => self.set_fault(PortFault::Health(h)),
            Err(e @ CmdError::Timeout { .. }) => self.set_fault(PortFault::Command(e)),
            Err(e) => {
                warn!("{}: QUERY_VPORT_STATE: {e}", self.name);
                self.link = false;
            }
        }
        self.link && self.fault.is_none()
    }

    fn num_rx_queues(&self) -> u16 {
        1
    }

    fn num_tx_queues(&self) -> u16 {
        1
    }

    fn rx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 || !self.tick() {
            return 0;
        }
        let headroom = self.pool.headroom();
        let mut received = 0;
        let mut seen = false;
        let mut budget = 1u32 << self.rx_cq.log_size;
        while !batch.is_full() && budget > 0 {
            budget -= 1;
            let Some(c) = self.rx_cq.pop() else { break };
            seen = true;
            if c.wqe_counter != self.rq.cc || (c.qpn != self.rqn && c.qpn != 0) {
                // Out of order or not ours: a cyclic RQ completes in order; skip it.
                self.stats.rx_errors += 1;
                continue;
            }
            let slot = usize::from(self.rq.cc & self.rq.mask());
            self.rq.cc = self.rq.cc.wrapping_add(1);
            let Some(mut buf) = self.rq.bufs[slot].take() else {
                self.stats.rx_errors += 1;
                continue;
            };
            let len = c.byte_count as usize;
            if c.opcode != cqe::OP_RESP_SEND
                || len < MIN_RX_FRAME
                || len > self.rx_room as usize
                || !buf.set_bounds(headroom, len)
            {
                // Dropping `buf` recycles it; the refill below posts a fresh one.
                self.stats.rx_errors += 1;
                continue;
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            let _ = batch.push(buf);
            received += 1;
        }
        if seen {
            self.dbr.write_be32(DBR_RX_CQ, self.rx_cq.ci & 0x00ff_ffff);
            self.refill_rx();
        } else if self.rq.in_flight() < self.rq.size() && self.pool.free_count() > 0 {
            self.refill_rx();
        }
        received
    }

    fn tx_burst(&mut self, queue: u16, batch: &mut PacketBatch) -> usize {
        if queue != 0 || !self.tick() {
            return 0;
        }
        self.reclaim_tx();
        if self.fault.is_some() || batch.is_empty() {
            return 0;
        }
        let free = self.sq.size() - self.sq.in_flight();
        let mut take = 0;
        let mut slots = free;
        for buf in batch.iter() {
            let len = buf.len();
            if len != 0 && len <= self.max_tx_frame {
                if slots == 0 {
                    break;
                }
                slots -= 1;
            }
            take += 1;
        }
        let lkey = self.hca.resd_lkey;
        let sqn = self.sqn;
        let mut sent = 0;
        let mut last_ctrl: Option<(usize, [u8; 16])> = None;
        for buf in batch.drain(..take) {
            let len = buf.len();
            if len == 0 || len > self.max_tx_frame {
                self.stats.tx_errors += 1;
                continue;
            }
            let pc = self.sq.pc;
            let slot = usize::from(pc & self.sq.mask());
            let mut w = [0u8; wqe::BB_SIZE];
            let inline = len.min(wqe::MIN_INLINE);
            let frame = buf.data();
            let ds = if len > inline {
                4u32
            } else {
                2 + (inline.saturating_sub(2) as u32).div_ceil(16)
            };
            w[0..4]
                .copy_from_slice(&((u32::from(pc) << 8) | u32::from(wqe::OP_SEND)).to_be_bytes());
            w[4..8].copy_from_slice(&((sqn << 8) | ds).to_be_bytes());
            w[wqe::ETH_INLINE_SZ..wqe::ETH_INLINE_SZ + 2]
                .copy_from_slice(&(inline as u16).to_be_bytes());
            w[wqe::ETH_INLINE..wqe::ETH_INLINE + inline].copy_from_slice(&frame[..inline]);
            if len > inline {
                let d = 0x30;
                w[d..d + 4].copy_from_slice(&((len - inline) as u32).to_be_bytes());
                w[d + 4..d + 8].copy_from_slice(&lkey.to_be_bytes());
                w[d + 8..d + 16].copy_from_slice(&(buf.phys_addr() + inline as u64).to_be_bytes());
            }
            let mut ctrl = [0u8; 16];
            ctrl.copy_from_slice(&w[..16]);
            last_ctrl = Some((slot, ctrl));
            self.sq.mem.write_array(slot * wqe::BB_SIZE, w);
            self.sq.bufs[slot] = Some(buf);
            self.sq.pc = pc.wrapping_add(1);
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += len as u64;
            sent += 1;
        }
        self.stats.tx_full += batch.len() as u64;
        if let Some((slot, mut ctrl)) = last_ctrl {
            // Completion on the last WQE only; it retires the whole burst.
            ctrl[wqe::CTRL_FM_CE_SE] = wqe::CE_ALWAYS;
            self.sq
                .mem
                .write8(slot * wqe::BB_SIZE + wqe::CTRL_FM_CE_SE, wqe::CE_ALWAYS);
            fence(Ordering::Release);
            self.dbr.write_be32(DBR_SQ + 4, u32::from(self.sq.pc));
            fence(Ordering::SeqCst);
            let mut first8 = [0u8; 8];
            first8.copy_from_slice(&ctrl[..8]);
            self.hca.uar_write64(uar::BF, u64::from_be_bytes(first8));
            self.stats.notifications += 1;
        }
        sent
    }

    fn tx_reclaim(&mut self, queue: u16) -> usize {
        if queue != 0 || self.fault.is_some() {
            return 0;
        }
        self.reclaim_tx()
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl<H: Mlx5Hw> Drop for Mlx5Port<H> {
    fn drop(&mut self) {
        // TEARDOWN_HCA first: afterwards the device no longer touches the rings and buffers
        // that the fields free next.
        self.hca.shutdown();
        self.rq.drain();
        self.sq.drain();
    }
}

impl<H: Mlx5Hw> fmt::Debug for Mlx5Port<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mlx5Port")
            .field("name", &self.name.as_str())
            .field("fault", &self.fault)
            .field("stats", &self.stats)
            .finish()
    }
}
