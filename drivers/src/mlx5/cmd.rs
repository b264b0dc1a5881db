//! The command interface (docs/mlx5.md §3): one 64-byte entry in a 4 KiB queue, input and
//! output mailbox chains of 576-byte blocks on 1 KiB boundaries, a rolling non-zero token,
//! the entry signature, polling on the ownership bit, then delivery status, command status and
//! syndrome. Commands are synchronous and polled; entry 0 is the only one used.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{Ordering, fence};

use super::health::{self, HealthError};
use super::layouts::{cmd_entry as ce, hdr, init_seg, mailbox as mb};
use super::{DmaMem, Mlx5Hw};
use crate::dma::PAGE_SIZE;

/// Entry byte 0x3f bits 7:1 (docs/mlx5.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Signature,
    Token,
    BadBlockNumber,
    OutputPointerAlignment,
    InputPointerAlignment,
    FirmwareInternal,
    InputLength,
    OutputLength,
    ReservedNotZero,
    BadCommandType,
    Other(u8),
}

impl DeliveryStatus {
    /// The status for a non-zero code.
    pub fn from_code(code: u8) -> DeliveryStatus {
        match code {
            0x01 => DeliveryStatus::Signature,
            0x02 => DeliveryStatus::Token,
            0x03 => DeliveryStatus::BadBlockNumber,
            0x04 => DeliveryStatus::OutputPointerAlignment,
            0x05 => DeliveryStatus::InputPointerAlignment,
            0x06 => DeliveryStatus::FirmwareInternal,
            0x07 => DeliveryStatus::InputLength,
            0x08 => DeliveryStatus::OutputLength,
            0x09 => DeliveryStatus::ReservedNotZero,
            0x10 => DeliveryStatus::BadCommandType,
            c => DeliveryStatus::Other(c),
        }
    }
}

/// The name of a command status (output byte 0, docs/mlx5.md §3.4).
pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "OK",
        0x01 => "INTERNAL_ERR",
        0x02 => "BAD_OP",
        0x03 => "BAD_PARAM",
        0x04 => "BAD_SYS_STATE",
        0x05 => "BAD_RESOURCE",
        0x06 => "RESOURCE_BUSY",
        0x07 => "NOT_READY",
        0x08 => "EXCEED_LIM",
        0x09 => "BAD_RES_STATE",
        0x0a => "BAD_INDEX",
        0x0f => "NO_RESOURCES",
        0x10 => "BAD_QP_STATE",
        0x30 => "BAD_PKT",
        0x40 => "BAD_SIZE",
        0x50 => "BAD_INPUT_LEN",
        0x51 => "BAD_OUTPUT_LEN",
        _ => "unknown status",
    }
}

/// Why a command did not complete successfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// The device did not give the entry back in time. The queue is unusable afterwards (the
    /// entry is still the device's), so every later command fails with this too.
    Timeout { opcode: u16 },
    /// The device could not deliver the command (bad entry or mailbox).
    Delivery { opcode: u16, status: DeliveryStatus },
    /// The command was delivered and failed.
    Status {
        opcode: u16,
        op_mod: u16,
        status: u8,
        syndrome: u32,
    },
    /// The device is in a fatal state (seen while waiting).
    Health(HealthError),
    /// No DMA memory for mailboxes.
    OutOfDmaMemory,
    /// Input or output longer than the driver supports (4 MiB).
    TooLong { opcode: u16 },
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CmdError::Timeout { opcode } => write!(f, "command {opcode:#x} timed out"),
            CmdError::Delivery { opcode, status } => {
                write!(f, "command {opcode:#x} not delivered: {status:?}")
            }
            CmdError::Status {
                opcode,
                op_mod,
                status,
                syndrome,
            } => write!(
                f,
                "command {opcode:#x}/{op_mod} failed: {} ({status:#x}), syndrome {syndrome:#010x}",
                status_name(status)
            ),
            CmdError::Health(h) => write!(f, "{h}"),
            CmdError::OutOfDmaMemory => f.write_str("no DMA memory for command mailboxes"),
            CmdError::TooLong { opcode } => write!(f, "command {opcode:#x} too long"),
        }
    }
}

const BLOCKS_PER_PAGE: usize = PAGE_SIZE / mb::ALIGN;
const MAX_LEN: usize = 4 << 20;
/// Polling steps: short first (the model and fast commands), then 100 µs.
const FAST_POLLS: u32 = 200;
const SLOW_POLL_US: u32 = 100;

/// The command queue of one HCA.
pub struct CmdQueue {
    queue: DmaMem,
    log_stride: u8,
    mailboxes: Vec<DmaMem>,
    token: u8,
    timeout_us: u64,
    stuck: bool,
    /// Commands posted so far.
    pub posted: u64,
}

impl CmdQueue {
    /// Allocates the queue and writes its address (high word first, then the low word with
    /// nic_interface = 0), after checking the interface revision and queue geometry.
    pub fn new<H: Mlx5Hw>(hw: &mut H, timeout_us: u64) -> Result<CmdQueue, super::Mlx5Error> {
        let rev = hw.read32(init_seg::CMDIF_REV_FW_SUB) >> 16;
        if rev != init_seg::CMDIF_REV {
            return Err(super::Mlx5Error::CmdifRevision(rev));
        }
        let geometry = hw.read32(init_seg::CMDQ_ADDR_L_SZ);
        let log_size = ((geometry >> 4) & 0xf) as u8;
        let log_stride = (geometry & 0xf) as u8;
        if log_size > 5 || log_size + log_stride > 12 || log_stride < 6 {
            return Err(super::Mlx5Error::Unsupported("command queue geometry"));
        }
        let queue =
            DmaMem::alloc(hw.allocator(), PAGE_SIZE).ok_or(super::Mlx5Error::OutOfDmaMemory)?;
        hw.write32(init_seg::CMDQ_ADDR_H, (queue.phys() >> 32) as u32);
        hw.write32(init_seg::CMDQ_ADDR_L_SZ, queue.phys() as u32 & !0xfff);
        Ok(CmdQueue {
            queue,
            log_stride,
            mailboxes: Vec::new(),
            token: 0,
            timeout_us,
            stuck: false,
            posted: 0,
        })
    }

    fn block(&self, k: usize) -> (&DmaMem, usize) {
        (
            &self.mailboxes[k / BLOCKS_PER_PAGE],
            (k % BLOCKS_PER_PAGE) * mb::ALIGN,
        )
    }

    fn block_phys(&self, k: usize) -> u64 {
        let (page, off) = self.block(k);
        page.phys() + off as u64
    }

    fn ensure_blocks<H: Mlx5Hw>(&mut self, hw: &H, blocks: usize) -> Result<(), CmdError> {
        while self.mailboxes.len() * BLOCKS_PER_PAGE < blocks {
            let page = DmaMem::alloc(hw.allocator(), PAGE_SIZE).ok_or(CmdError::OutOfDmaMemory)?;
            self.mailboxes.push(page);
        }
        Ok(())
    }

    fn next_token(&mut self) -> u8 {
        self.token = self.token.wrapping_add(1);
        if self.token == 0 {
            self.token = 1;
        }
        self.token
    }

    /// Runs one command: `input` (header included) in, `out_len` bytes (header included, at
    /// least 16) back. Fails on delivery errors, a non-zero status, a timeout or a fatal
    /// health condition seen while waiting.
    pub fn exec<H: Mlx5Hw>(
        &mut self,
        hw: &mut H,
        input: &[u8],
        out_len: usize,
    ) -> Result<Vec<u8>, CmdError> {
        let opcode = hdr::OPCODE.get(input) as u16;
        let op_mod = hdr::OP_MOD.get(input) as u16;
        if self.stuck {
            return Err(CmdError::Timeout { opcode });
        }
        let out_len = out_len.max(hdr::SIZE);
        if input.len() > MAX_LEN || out_len > MAX_LEN {
            return Err(CmdError::TooLong { opcode });
        }
        let in_len = input.len().max(hdr::SIZE);
        let n_in = (in_len - ce::INLINE_LEN).div_ceil(mb::DATA_LEN);
        let n_out = (out_len - ce::INLINE_LEN).div_ceil(mb::DATA_LEN);
        self.ensure_blocks(hw, n_in + n_out)?;
        let token = self.next_token();

        // Mailbox chains: input blocks 0..n_in, output blocks n_in..n_in+n_out.
        let mut zero = [0u8; mb::SIZE];
        for (chain_start, count, data) in [(0, n_in, Some(input)), (n_in, n_out, None)] {
            for k in 0..count {
                zero.fill(0);
                if let Some(data) = data {
                    let from = ce::INLINE_LEN + k * mb::DATA_LEN;
                    let to = (from + mb::DATA_LEN).min(data.len());
                    if from < to {
                        zero[..to - from].copy_from_slice(&data[from..to]);
                    }
                }
                let next = if k + 1 < count {
                    self.block_phys(chain_start + k + 1)
                } else {
                    0
                };
                zero[mb::NEXT..mb::NEXT + 8].copy_from_slice(&next.to_be_bytes());
                zero[mb::BLOCK_NUM..mb::BLOCK_NUM + 4].copy_from_slice(&(k as u32).to_be_bytes());
                zero[mb::TOKEN] = token;
                let (page, off) = self.block(chain_start + k);
                page.write(off, &zero);
            }
        }

        let mut entry = [0u8; ce::SIZE];
        entry[ce::TYPE] = ce::PCI_CMD_XPORT;
        entry[ce::IN_LEN..ce::IN_LEN + 4].copy_from_slice(&(in_len as u32).to_be_bytes());
        let in_mbox = if n_in > 0 { self.block_phys(0) } else { 0 };
        entry[ce::IN_MBOX..ce::IN_MBOX + 8].copy_from_slice(&in_mbox.to_be_bytes());
        let inline = input.len().min(ce::INLINE_LEN);
        entry[ce::IN_INLINE..ce::IN_INLINE + inline].copy_from_slice(&input[..inline]);
        let out_mbox = if n_out > 0 { self.block_phys(n_in) } else { 0 };
        entry[ce::OUT_MBOX..ce::OUT_MBOX + 8].copy_from_slice(&out_mbox.to_be_bytes());
        entry[ce::OUT_LEN..ce::OUT_LEN + 4].copy_from_slice(&(out_len as u32).to_be_bytes());
        entry[ce::TOKEN] = token;
        entry[ce::STATUS_OWN] = 1;
        entry[ce::SIGNATURE] = signature(&entry);
        // Everything but the ownership byte, then ownership, then the doorbell.
        self.queue.write(0, &entry[..ce::STATUS_OWN]);
        fence(Ordering::SeqCst);
        self.queue.write8(ce::STATUS_OWN, 1);
        fence(Ordering::SeqCst);
        hw.write32(init_seg::CMD_DBELL, 1);
        self.posted += 1;

        let mut waited: u64 = 0;
        let mut polls: u32 = 0;
        while self.queue.read8(ce::STATUS_OWN) & 1 != 0 {
            if polls % 64 == 63
                && let Err(h) = health::check(hw)
            {
                self.stuck = true;
                return Err(CmdError::Health(h));
            }
            if waited >= self.timeout_us {
                self.stuck = true;
                // One last look: a dead device explains the timeout better.
                return Err(match health::check(hw) {
                    Err(h) => CmdError::Health(h),
                    Ok(()) => CmdError::Timeout { opcode },
                });
            }
            let step = if polls < FAST_POLLS { 1 } else { SLOW_POLL_US };
            hw.delay_us(step);
            waited += u64::from(step);
            polls = polls.saturating_add(1);
        }
        fence(Ordering::SeqCst);
        let delivery = self.queue.read8(ce::STATUS_OWN) >> 1;
        if delivery != 0 {
            return Err(CmdError::Delivery {
                opcode,
                status: DeliveryStatus::from_code(delivery),
            });
        }
        let mut out = vec![0u8; out_len];
        self.queue.read(ce::OUT_INLINE, &mut out[..ce::INLINE_LEN]);
        for k in 0..n_out {
            let from = ce::INLINE_LEN + k * mb::DATA_LEN;
            let to = (from + mb::DATA_LEN).min(out_len);
            let (page, off) = self.block(n_in + k);
            page.read(off, &mut out[from..to]);
        }
        let status = hdr::STATUS.get(&out) as u8;
        if status != 0 {
            return Err(CmdError::Status {
                opcode,
                op_mod,
                status,
                syndrome: hdr::SYNDROME.get(&out),
            });
        }
        Ok(out)
    }

    /// Stride of the queue's entries (log2 bytes).
    pub fn log_stride(&self) -> u8 {
        self.log_stride
    }

    /// Whether a timed-out command left the queue unusable.
    pub fn is_stuck(&self) -> bool {
        self.stuck
    }
}

/// `~XOR` of the bytes, the signature of a command entry (computed with the signature byte 0)
/// and of mailbox blocks.
pub fn signature(bytes: &[u8]) -> u8 {
    !bytes.iter().fold(0u8, |acc, b| acc ^ b)
}

/// A zeroed command input of `len` bytes with opcode and op_mod set.
pub fn input(opcode: u16, op_mod: u16, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len.max(hdr::SIZE)];
    hdr::OPCODE.set(&mut v, u32::from(opcode));
    hdr::OP_MOD.set(&mut v, u32::from(op_mod));
    v
}
