//! The virtio-net control virtqueue (virtio 1.x 5.1.6.5): a tiny split ring used synchronously
//! at bring-up (and on the slow path), one command at a time.
//!
//! A command is a two-descriptor chain in one DMA page next to the ring: a device-readable part
//! (`class`, `command`, command data) and a device-writable `ack` byte. The driver posts it,
//! kicks, and polls the used ring (boundedly) for the device's answer. Nothing here is on the
//! packet path, so it favours simplicity over speed.

use core::ptr;
use core::sync::atomic::{AtomicU16, Ordering, fence};

use crate::dma::{DmaAllocator, DmaRegion, PAGE_SIZE};

use super::ring::{VIRTQ_DESC_F_WRITE, ring_layout};

/// `VIRTQ_DESC_F_NEXT`.
const DESC_F_NEXT: u16 = 1;
/// avail.flags: no used-buffer notifications (we poll).
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Entries in the control ring (capped to the device's maximum); a command needs 2.
pub(crate) const CTRL_QUEUE_SIZE: u16 = 8;
/// Where the command and the ack byte live in the page (after the ring, which needs < 512 B).
const CMD_OFFSET: usize = 2048;
const ACK_OFFSET: usize = 2048 + 256;
/// Longest command data this queue sends.
const MAX_CMD_DATA: usize = 64;

/// `VIRTIO_NET_CTRL_MQ`.
pub(crate) const CLASS_MQ: u8 = 4;
/// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET` (data: le16 `virtqueue_pairs`).
pub(crate) const MQ_VQ_PAIRS_SET: u8 = 0;
/// `VIRTIO_NET_OK`.
pub(crate) const ACK_OK: u8 = 0;
/// Written into the ack byte before posting: a device that does not answer leaves it.
const ACK_UNSET: u8 = 0xff;

/// How a control command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// The device answered with this ack (`VIRTIO_NET_ERR` = 1).
    Nak(u8),
    /// The device did not return the command within the polling bound.
    Timeout,
    /// The device returned a used element that is not our command.
    BadUsed(u32),
    /// The command data is longer than this queue handles.
    TooLong,
}

/// The control virtqueue's ring and command page.
pub(crate) struct CtrlQueue {
    allocator: &'static dyn DmaAllocator,
    mem: DmaRegion,
    size: u16,
    /// The virtqueue number (2 × max_virtqueue_pairs with MQ, else 2).
    index: u16,
    avail_off: usize,
    used_off: usize,
    avail_idx: u16,
    last_used: u16,
}

impl CtrlQueue {
    /// Allocates the ring (`size` entries, a power of two ≥ 2) for virtqueue `index`.
    pub(crate) fn new(allocator: &'static dyn DmaAllocator, index: u16, size: u16) -> Option<Self> {
        if !size.is_power_of_two() || !(2..=CTRL_QUEUE_SIZE).contains(&size) {
            return None;
        }
        let (avail_off, used_off, total) = ring_layout(size);
        debug_assert!(total <= CMD_OFFSET);
        let mem = allocator.alloc_contiguous(1)?;
        if mem.len < PAGE_SIZE || mem.virt % PAGE_SIZE != 0 {
            // SAFETY: fresh from this allocator, never shown to a device.
            unsafe { allocator.dealloc(mem) };
            return None;
        }
        // SAFETY: one page we own; indices, flags and events start at 0.
        unsafe { ptr::write_bytes(mem.virt as *mut u8, 0, mem.len) };
        let q = CtrlQueue {
            allocator,
            mem,
            size,
            index,
            avail_off,
            used_off,
            avail_idx: 0,
            last_used: 0,
        };
        // Without EVENT_IDX this flag suppresses interrupts; with it, used_event = 0x8000
        // (written below) keeps the device from reaching it for our few commands.
        q.write_u16(q.avail_off, AVAIL_F_NO_INTERRUPT);
        q.write_u16(q.avail_off + 4 + 2 * size as usize, 0x8000);
        Some(q)
    }

    /// Clears avail.flags (with EVENT_IDX the driver must leave it 0, 2.7.7.1).
    pub(crate) fn set_event_idx(&mut self) {
        self.write_u16(self.avail_off, 0);
    }

    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    /// Physical addresses for `Transport::queue_set`.
    pub(crate) fn addresses(&self) -> (u64, u64, u64) {
        (
            self.mem.phys,
            self.mem.phys + self.avail_off as u64,
            self.mem.phys + self.used_off as u64,
        )
    }

    /// Sends `class`/`command` with `data`, kicking through `kick`, and waits (at most
    /// `spins` polls) for the device's ack.
    pub(crate) fn command(
        &mut self,
        class: u8,
        command: u8,
        data: &[u8],
        kick: impl FnOnce(u16),
        spins: u32,
    ) -> Result<(), CtrlError> {
        if data.len() > MAX_CMD_DATA {
            return Err(CtrlError::TooLong);
        }
        let base = self.mem.virt;
        // SAFETY: the command area lies inside our page, past the ring; the device reads it
        // only after the publish below.
        unsafe {
            let cmd = (base + CMD_OFFSET) as *mut u8;
            ptr::write_volatile(cmd, class);
            ptr::write_volatile(cmd.add(1), command);
            for (i, b) in data.iter().enumerate() {
                ptr::write_volatile(cmd.add(2 + i), *b);
            }
            ptr::write_volatile((base + ACK_OFFSET) as *mut u8, ACK_UNSET);
        }
        // Descriptors 0 (readable: header + data) -> 1 (writable: ack).
        self.write_desc(
            0,
            self.mem.phys + CMD_OFFSET as u64,
            2 + data.len() as u32,
            DESC_F_NEXT,
            1,
        );
        self.write_desc(
            1,
            self.mem.phys + ACK_OFFSET as u64,
            1,
            VIRTQ_DESC_F_WRITE,
            0,
        );
        let slot = self.avail_idx & (self.size - 1);
        self.write_u16(self.avail_off + 4 + 2 * slot as usize, 0);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        fence(Ordering::Release);
        self.atomic(self.avail_off + 2)
            .store(self.avail_idx, Ordering::Release);
        fence(Ordering::SeqCst);
        // Always kick: one command, no point in consulting the suppression state.
        kick(self.index);

        let mut answered = false;
        for _ in 0..spins {
            if self.atomic(self.used_off + 2).load(Ordering::Acquire) != self.last_used {
                answered = true;
                break;
            }
            core::hint::spin_loop();
        }
        if !answered {
            return Err(CtrlError::Timeout);
        }
        let elem = self.used_off + 4 + 8 * (self.last_used & (self.size - 1)) as usize;
        // SAFETY: inside the used ring; made visible by the Acquire load above.
        let id = unsafe { u32::from_le(ptr::read_volatile((base + elem) as *const u32)) };
        self.last_used = self.last_used.wrapping_add(1);
        if id != 0 {
            return Err(CtrlError::BadUsed(id));
        }
        // SAFETY: our ack byte; the device has returned the chain.
        let ack = unsafe { ptr::read_volatile((base + ACK_OFFSET) as *const u8) };
        if ack == ACK_OK {
            Ok(())
        } else {
            Err(CtrlError::Nak(ack))
        }
    }

    fn write_desc(&mut self, id: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let p = (self.mem.virt + 16 * id as usize) as *mut u8;
        // SAFETY: descriptor `id < size` lies in the table at the start of our page.
        unsafe {
            ptr::write_volatile(p.cast::<u64>(), addr.to_le());
            ptr::write_volatile(p.add(8).cast::<u32>(), len.to_le());
            ptr::write_volatile(p.add(12).cast::<u16>(), flags.to_le());
            ptr::write_volatile(p.add(14).cast::<u16>(), next.to_le());
        }
    }

    fn write_u16(&self, offset: usize, v: u16) {
        debug_assert!(offset + 2 <= CMD_OFFSET);
        // SAFETY: an aligned u16 of the ring inside our page.
        unsafe { ptr::write_volatile((self.mem.virt + offset) as *mut u16, v.to_le()) };
    }

    fn atomic(&self, offset: usize) -> &AtomicU16 {
        // SAFETY: an aligned u16 index of the ring inside our page, alive as long as `self`.
        unsafe { AtomicU16::from_ptr((self.mem.virt + offset) as *mut u16) }
    }
}

impl Drop for CtrlQueue {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` from this allocator; the owner reset the device first.
        unsafe { self.allocator.dealloc(self.mem) };
    }
}
