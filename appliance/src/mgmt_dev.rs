//! The management NIC as a smoltcp `phy::Device`: any driver behind the `Nic` trait, with
//! frames in pool buffers. Management traffic is light, so each transmitted frame is sent at
//! once (one burst of one); received frames are taken a burst at a time, in order.

use alloc::boxed::Box;
use alloc::rc::Rc;
use drivers::dma::{PacketBatch, PacketBuf, PacketPool};
use drivers::nic::Nic;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use switch_core::packet::Frame;

pub struct NicDevice {
    nic: Box<dyn Nic>,
    pool: Rc<PacketPool>,
    rx: heapless::Deque<PacketBuf, 32>,
    batch: PacketBatch,
    pub tx_dropped: u64,
}

impl NicDevice {
    pub fn new(nic: Box<dyn Nic>, pool: Rc<PacketPool>) -> Self {
        NicDevice {
            nic,
            pool,
            rx: heapless::Deque::new(),
            batch: PacketBatch::new(),
            tx_dropped: 0,
        }
    }

    pub fn stats(&self) -> drivers::nic::NicStats {
        self.nic.stats()
    }

    pub fn mac(&self) -> [u8; 6] {
        self.nic.mac_address()
    }
}

pub struct NicRx(PacketBuf);

impl RxToken for NicRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.data())
    }
}

pub struct NicTx<'a> {
    dev: &'a mut NicDevice,
}

impl TxToken for NicTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let dev = self.dev;
        let buf = dev
            .pool
            .alloc()
            .and_then(|mut b| b.set_len(len).then_some(b));
        match buf {
            Some(mut buf) => {
                let r = f(buf.data_mut());
                let _ = dev.batch.push(buf);
                dev.nic.tx_burst(0, &mut dev.batch);
                dev.tx_dropped += dev.batch.len() as u64;
                dev.batch.clear();
                r
            }
            _ => {
                // No buffer: let smoltcp build the frame into scratch space and drop it (TCP
                // retransmits; counted).
                dev.tx_dropped += 1;
                let mut scratch = [0u8; 1514];
                let n = len.min(scratch.len());
                f(&mut scratch[..n])
            }
        }
    }
}

impl Device for NicDevice {
    type RxToken<'a> = NicRx;
    type TxToken<'a> = NicTx<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(NicRx, NicTx<'_>)> {
        if self.rx.is_empty() {
            self.nic.rx_burst(0, &mut self.batch);
            for buf in self.batch.drain(..) {
                let _ = self.rx.push_back(buf);
            }
        }
        let buf = self.rx.pop_front()?;
        Some((NicRx(buf), NicTx { dev: self }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<NicTx<'_>> {
        self.nic.tx_reclaim(0);
        Some(NicTx { dev: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = Some(32);
        caps
    }
}
