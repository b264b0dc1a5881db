//! Rings shared with the device (docs/mlx5.md §5): completion queues with ownership parity,
//! the cyclic receive queue, the send queue of 64-byte WQEBBs, and the pure parsers of what the
//! device writes (CQEs, EQEs), which never panic on any bytes (`drivers/fuzz`).

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use super::DmaMem;
use super::layouts::{cqe, eqe, read_be32};
use crate::dma::{DmaAllocator, PacketBuf};

/// What a valid CQE says (docs/mlx5.md §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    pub opcode: u8,
    pub byte_count: u32,
    pub wqe_counter: u16,
    /// sop_drop_qpn [23:0]: the SQ or RQ number.
    pub qpn: u32,
    /// Syndrome of an error CQE (0 otherwise).
    pub syndrome: u8,
    /// l4_l3_hdr_type bit 0: the device stripped a VLAN tag into `vlan_info`.
    pub vlan_stripped: bool,
    pub vlan_info: u16,
}

/// Parses the CQE at consumer index `ci` of a CQ of `1 << log_size` entries: `None` if the
/// entry still belongs to the device (ownership parity differs, or the opcode is INVALID).
pub fn parse_cqe(bytes: &[u8], ci: u32, log_size: u8) -> Option<Cqe> {
    let op_own = *bytes.get(cqe::OP_OWN)?;
    let opcode = op_own >> 4;
    let expected_owner = ((ci >> (log_size & 31)) & 1) as u8;
    if opcode == cqe::OP_INVALID || op_own & 1 != expected_owner {
        return None;
    }
    let is_err = opcode == cqe::OP_REQ_ERR || opcode == cqe::OP_RESP_ERR;
    Some(Cqe {
        opcode,
        byte_count: read_be32(bytes, cqe::BYTE_CNT),
        wqe_counter: (read_be32(bytes, cqe::WQE_COUNTER) >> 16) as u16,
        qpn: read_be32(bytes, cqe::SOP_DROP_QPN) & 0x00ff_ffff,
        syndrome: if is_err {
            bytes.get(cqe::SYNDROME).copied().unwrap_or(0)
        } else {
            0
        },
        vlan_stripped: bytes.get(cqe::L4_L3_HDR_TYPE).is_some_and(|b| b & 1 != 0),
        vlan_info: (read_be32(bytes, cqe::L4_L3_HDR_TYPE - 1) & 0xffff) as u16,
    })
}

/// What an EQE says, for the events this driver handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The firmware wants `pages` more pages (negative: it returns them).
    PageRequest {
        func_id: u16,
        pages: i32,
    },
    PortChange {
        up: bool,
    },
    CqError {
        cqn: u32,
        syndrome: u8,
    },
    /// WQ catastrophic error or internal error.
    Fatal {
        event_type: u8,
    },
    Other {
        event_type: u8,
    },
}

/// Parses the EQE at consumer index `ci` of an EQ of `1 << log_size` entries; `None` if the
/// device has not written it yet.
pub fn parse_eqe(bytes: &[u8], ci: u32, log_size: u8) -> Option<Event> {
    let owner = *bytes.get(eqe::OWNER)? & 1;
    if owner != ((ci >> (log_size & 31)) & 1) as u8 {
        return None;
    }
    let event_type = *bytes.get(eqe::TYPE)?;
    let sub = bytes.get(eqe::SUB_TYPE).copied().unwrap_or(0);
    Some(match event_type {
        eqe::TYPE_PAGE_REQUEST => Event::PageRequest {
            func_id: (read_be32(bytes, eqe::DATA) & 0xffff) as u16,
            pages: read_be32(bytes, eqe::PAGE_NUM) as i32,
        },
        eqe::TYPE_PORT_CHANGE => Event::PortChange {
            up: sub == eqe::PORT_SUB_ACTIVE,
        },
        eqe::TYPE_CQ_ERROR => Event::CqError {
            cqn: read_be32(bytes, eqe::CQ_ERR_CQN) & 0x00ff_ffff,
            syndrome: bytes.get(eqe::CQ_ERR_SYND).copied().unwrap_or(0),
        },
        eqe::TYPE_WQ_CATAS | eqe::TYPE_INTERNAL_ERROR => Event::Fatal { event_type },
        _ => Event::Other { event_type },
    })
}

/// A completion queue of 64-byte CQEs, pre-set to INVALID/owner 1 (docs/mlx5.md §4.3).
pub struct Cq {
    pub mem: DmaMem,
    pub log_size: u8,
    /// Consumer index (24 bits used by the device).
    pub ci: u32,
    pub cqn: u32,
}

impl Cq {
    pub fn new(allocator: &'static dyn DmaAllocator, log_size: u8) -> Option<Cq> {
        let entries = 1usize << log_size;
        let mem = DmaMem::alloc(allocator, entries * cqe::SIZE)?;
        for i in 0..entries {
            mem.write8(i * cqe::SIZE + cqe::OP_OWN, (cqe::OP_INVALID << 4) | 1);
        }
        Some(Cq {
            mem,
            log_size,
            ci: 0,
            cqn: 0,
        })
    }

    /// The next valid CQE, consuming it.
    #[inline]
    pub fn pop(&mut self) -> Option<Cqe> {
        let off = (self.ci as usize & ((1 << self.log_size) - 1)) * cqe::SIZE;
        // Check ownership on the last byte before reading the rest (the device writes it last).
        let op_own = self.mem.read8(off + cqe::OP_OWN);
        let opcode = op_own >> 4;
        if opcode == cqe::OP_INVALID || op_own & 1 != ((self.ci >> self.log_size) & 1) as u8 {
            return None;
        }
        fence(Ordering::Acquire);
        let bytes: [u8; cqe::SIZE] = self.mem.read_array(off);
        let parsed = parse_cqe(&bytes, self.ci, self.log_size)?;
        self.ci = self.ci.wrapping_add(1);
        Some(parsed)
    }
}

/// A work queue's buffers: DMA ring memory plus the packet buffer behind each slot.
pub struct Wq {
    pub mem: DmaMem,
    pub log_size: u8,
    /// Producer and consumer counters (16-bit, free-running, in WQEs/WQEBBs).
    pub pc: u16,
    pub cc: u16,
    pub bufs: Vec<Option<PacketBuf>>,
    pub num: u32,
}

impl Wq {
    pub fn new(allocator: &'static dyn DmaAllocator, log_size: u8, stride: usize) -> Option<Wq> {
        let entries = 1usize << log_size;
        let mem = DmaMem::alloc(allocator, entries * stride)?;
        let mut bufs = Vec::with_capacity(entries);
        bufs.resize_with(entries, || None);
        Some(Wq {
            mem,
            log_size,
            pc: 0,
            cc: 0,
            bufs,
            num: 0,
        })
    }

    #[inline]
    pub fn size(&self) -> u16 {
        1 << self.log_size
    }

    #[inline]
    pub fn mask(&self) -> u16 {
        self.size() - 1
    }

    /// Slots in use.
    #[inline]
    pub fn in_flight(&self) -> u16 {
        self.pc.wrapping_sub(self.cc)
    }

    /// Drops every buffer still posted (after the queue is destroyed or the device is dead)
    /// and resets the counters.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        for slot in &mut self.bufs {
            if slot.take().is_some() {
                n += 1;
            }
        }
        self.pc = 0;
        self.cc = 0;
        n
    }
}
