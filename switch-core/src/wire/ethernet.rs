//! Ethernet II frames (and the 802.3 length/LLC/SNAP case that extraction needs to recognise).

use super::{Error, Result, get_array, get_slice, get_slice_mut, get_u16, set_bytes, set_u16};

/// A 48-bit MAC address.
pub type EthernetAddress = [u8; 6];

/// Length of the Ethernet header (destination, source, type).
pub const HEADER_LEN: usize = 14;

/// EtherType values ironflow knows.
pub mod ether_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag.
    pub const QINQ: u16 = 0x88a8;
    /// The pre-standard service tag still used by some gear.
    pub const QINQ_9100: u16 = 0x9100;
    pub const IPV6: u16 = 0x86dd;
    /// Smallest value that is an EtherType; smaller values are 802.3 lengths.
    pub const MIN: u16 = 0x0600;
    /// The `eth_type` OpenFlow (and Open vSwitch) gives an 802.3 frame without SNAP header.
    pub const NONE: u16 = 0x05ff;

    /// Whether `t` is the TPID of a VLAN tag ironflow parses.
    #[inline]
    pub const fn is_vlan(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_9100)
    }
}

mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking that it holds a whole Ethernet header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst(&self) -> EthernetAddress {
        get_array(self.buffer.as_ref(), field::DST)
    }

    #[inline]
    pub fn src(&self) -> EthernetAddress {
        get_array(self.buffer.as_ref(), field::SRC)
    }

    /// The EtherType (or TPID, or 802.3 length) field.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, field::PAYLOAD, d.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst(&mut self, a: EthernetAddress) {
        set_bytes(self.buffer.as_mut(), field::DST, &a);
    }

    #[inline]
    pub fn set_src(&mut self, a: EthernetAddress) {
        set_bytes(self.buffer.as_mut(), field::SRC, &a);
    }

    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let d = self.buffer.as_mut();
        let n = d.len();
        get_slice_mut(d, field::PAYLOAD, n)
    }
}

/// The fields of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    pub ethertype: u16,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        Ok(EthernetRepr {
            src: frame.src(),
            dst: frame.dst(),
            ethertype: frame.ethertype(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_src(self.src);
        frame.set_dst(self.dst);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd,
    ];

    #[test]
    fn parse_and_emit() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src(), [0x11, 0x12, 0x13, 0x14, 0x15, 0x16]);
        assert_eq!(f.ethertype(), ether_type::IPV4);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let r = EthernetRepr::parse(&f).unwrap();
        let mut buf = [0u8; 18];
        buf[14..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        r.emit(&mut EthernetFrame::new_checked(&mut buf[..]).unwrap());
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn too_short() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..n]),
                Err(Error::Truncated)
            );
        }
        assert!(
            EthernetFrame::new_checked(&FRAME[..HEADER_LEN])
                .unwrap()
                .payload()
                .is_empty()
        );
    }
}
