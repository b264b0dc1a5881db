//! ICMPv6 (RFC 4443) and the neighbour discovery messages a switch matches on (RFC 4861):
//! neighbour solicitation / advertisement with their target and link-layer address options.

use super::checksum;
use super::ethernet::EthernetAddress;
use super::ipv6::Ipv6Address;
use super::{Error, Result, get_array, get_slice, get_u8, get_u16, set_bytes, set_u8, set_u16};

/// Type, code, checksum.
pub const HEADER_LEN: usize = 4;
/// Offset of the checksum inside the header.
pub const CHECKSUM_OFFSET: usize = 2;

pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;

/// ND option types.
pub const OPT_SOURCE_LL_ADDR: u8 = 1;
pub const OPT_TARGET_LL_ADDR: u8 = 2;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv6Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 0)
    }
    #[inline]
    pub fn msg_code(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 1)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }
    /// The message body after the 4-byte header.
    pub fn body(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, HEADER_LEN, d.len())
    }
    /// Whether this is an NS or NA with code 0 (the kinds that carry a target and options).
    #[inline]
    pub fn is_nd(&self) -> bool {
        matches!(self.msg_type(), NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT) && self.msg_code() == 0
    }
    /// Checks the checksum with the IPv6 pseudo-header sum.
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        checksum::verify(pseudo, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), 0, v);
    }
    pub fn set_msg_code(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), 1, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, v);
    }
    /// Computes the checksum over the whole buffer plus the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = !checksum::combine(&[pseudo, checksum::data(self.buffer.as_ref())]);
        self.set_checksum(c);
    }
}

/// Length of NS/NA up to the options: header, 4 bytes reserved/flags, target.
pub const ND_FIXED_LEN: usize = 24;
/// Offset of the target address.
pub const ND_TARGET_OFFSET: usize = 8;

/// A view of a neighbour solicitation or advertisement (starting at the ICMPv6 type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdPacket<T> {
    /// Requires an NS or NA with code 0 and the target address present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let d = buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if !matches!(get_u8(d, 0), NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT) || get_u8(d, 1) != 0 {
            return Err(Error::Malformed);
        }
        if d.len() < ND_FIXED_LEN {
            return Err(Error::Truncated);
        }
        Ok(NdPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 0)
    }
    /// NA flags: router (0x80), solicited (0x40), override (0x20).
    #[inline]
    pub fn flags(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 4)
    }
    #[inline]
    pub fn target_addr(&self) -> Ipv6Address {
        get_array(self.buffer.as_ref(), ND_TARGET_OFFSET)
    }
    /// The options, as bytes.
    pub fn options(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        get_slice(d, ND_FIXED_LEN, d.len())
    }
    /// Iterates the options; stops at the end or at a malformed option.
    pub fn option_iter(&self) -> NdOptionIter<'_> {
        NdOptionIter::new(self.options())
    }
    /// The link-layer address from the option OpenFlow matches on: source (type 1) for NS,
    /// target (type 2) for NA. `Ok(None)` when absent; `Err(Malformed)` when an option is
    /// malformed or the address option appears twice or with the wrong length.
    pub fn ll_addr(&self) -> Result<Option<(usize, EthernetAddress)>> {
        let want = if self.msg_type() == NEIGHBOR_SOLICIT {
            OPT_SOURCE_LL_ADDR
        } else {
            OPT_TARGET_LL_ADDR
        };
        let mut found = None;
        let mut it = self.option_iter();
        for opt in &mut it {
            if opt.kind == want {
                if found.is_some() || opt.data.len() != 6 {
                    return Err(Error::Malformed);
                }
                found = Some((ND_FIXED_LEN + opt.offset + 2, get_array(opt.data, 0)));
            }
        }
        if it.malformed {
            return Err(Error::Malformed);
        }
        Ok(found)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdPacket<T> {
    pub fn set_flags(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), 4, v);
    }
    pub fn set_target_addr(&mut self, a: Ipv6Address) {
        set_bytes(self.buffer.as_mut(), ND_TARGET_OFFSET, &a);
    }
}

/// One ND option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    pub kind: u8,
    /// Offset of the option from the start of the options.
    pub offset: usize,
    /// The option's bytes after type and length.
    pub data: &'a [u8],
}

/// Iterator over ND options. Each option is at least 8 bytes; a zero length or an option that
/// runs past the end stops the iteration and sets `malformed`.
#[derive(Debug, Clone)]
pub struct NdOptionIter<'a> {
    rest: &'a [u8],
    offset: usize,
    pub malformed: bool,
}

impl<'a> NdOptionIter<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        NdOptionIter {
            rest: options,
            offset: 0,
            malformed: false,
        }
    }
}

impl<'a> Iterator for NdOptionIter<'a> {
    type Item = NdOption<'a>;

    fn next(&mut self) -> Option<NdOption<'a>> {
        if self.rest.is_empty() || self.malformed {
            return None;
        }
        let len = usize::from(get_u8(self.rest, 1)) * 8;
        if len == 0 || len > self.rest.len() {
            self.malformed = true;
            return None;
        }
        let (opt, rest) = self.rest.split_at(len);
        let o = NdOption {
            kind: get_u8(opt, 0),
            offset: self.offset,
            data: get_slice(opt, 2, len),
        };
        self.rest = rest;
        self.offset += len;
        Some(o)
    }
}

/// The ICMPv6 messages ironflow builds: echo, and NS/NA with an optional link-layer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Repr {
    EchoRequest {
        ident: u16,
        seq_no: u16,
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
    },
    NeighborSolicit {
        target: Ipv6Address,
        source_ll: Option<EthernetAddress>,
    },
    NeighborAdvert {
        flags: u8,
        target: Ipv6Address,
        target_ll: Option<EthernetAddress>,
    },
}

impl Icmpv6Repr {
    /// Parses a message whose checksum verifies against `pseudo`; other kinds are `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>, pseudo: u16) -> Result<Self> {
        if !p.verify_checksum(pseudo) {
            return Err(Error::Malformed);
        }
        let d = p.buffer.as_ref();
        match (p.msg_type(), p.msg_code()) {
            (ECHO_REQUEST | ECHO_REPLY, 0) => {
                if d.len() < 8 {
                    return Err(Error::Truncated);
                }
                let (ident, seq_no) = (get_u16(d, 4), get_u16(d, 6));
                Ok(if p.msg_type() == ECHO_REQUEST {
                    Icmpv6Repr::EchoRequest { ident, seq_no }
                } else {
                    Icmpv6Repr::EchoReply { ident, seq_no }
                })
            }
            (NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT, 0) => {
                let nd = NdPacket::new_checked(d)?;
                let ll = nd.ll_addr()?.map(|(_, a)| a);
                Ok(if nd.msg_type() == NEIGHBOR_SOLICIT {
                    Icmpv6Repr::NeighborSolicit {
                        target: nd.target_addr(),
                        source_ll: ll,
                    }
                } else {
                    Icmpv6Repr::NeighborAdvert {
                        flags: nd.flags(),
                        target: nd.target_addr(),
                        target_ll: ll,
                    }
                })
            }
            _ => Err(Error::Malformed),
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { .. } | Icmpv6Repr::EchoReply { .. } => 8,
            Icmpv6Repr::NeighborSolicit { source_ll: ll, .. }
            | Icmpv6Repr::NeighborAdvert { target_ll: ll, .. } => {
                ND_FIXED_LEN + if ll.is_some() { 8 } else { 0 }
            }
        }
    }

    /// Writes the message into `buf[..buffer_len()]` and fills the checksum with `pseudo`
    /// (the IPv6 pseudo-header sum for `buffer_len()` bytes of ICMPv6).
    pub fn emit_into(&self, buf: &mut [u8], pseudo: u16) -> Result<()> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(Error::Truncated)?;
        b.fill(0);
        let ll_opt = |b: &mut [u8], kind: u8, a: &EthernetAddress| {
            set_u8(b, ND_FIXED_LEN, kind);
            set_u8(b, ND_FIXED_LEN + 1, 1);
            set_bytes(b, ND_FIXED_LEN + 2, a);
        };
        match self {
            Icmpv6Repr::EchoRequest { ident, seq_no } | Icmpv6Repr::EchoReply { ident, seq_no } => {
                let t = if matches!(self, Icmpv6Repr::EchoRequest { .. }) {
                    ECHO_REQUEST
                } else {
                    ECHO_REPLY
                };
                set_u8(b, 0, t);
                set_u16(b, 4, *ident);
                set_u16(b, 6, *seq_no);
            }
            Icmpv6Repr::NeighborSolicit { target, source_ll } => {
                set_u8(b, 0, NEIGHBOR_SOLICIT);
                set_bytes(b, ND_TARGET_OFFSET, target);
                if let Some(a) = source_ll {
                    ll_opt(b, OPT_SOURCE_LL_ADDR, a);
                }
            }
            Icmpv6Repr::NeighborAdvert {
                flags,
                target,
                target_ll,
            } => {
                set_u8(b, 0, NEIGHBOR_ADVERT);
                set_u8(b, 4, *flags);
                set_bytes(b, ND_TARGET_OFFSET, target);
                if let Some(a) = target_ll {
                    ll_opt(b, OPT_TARGET_LL_ADDR, a);
                }
            }
        }
        Icmpv6Packet { buffer: b }.fill_checksum(pseudo);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::pseudo_header_v6;

    const SRC: Ipv6Address = [
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
    ];
    const DST: Ipv6Address = [
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x01,
    ];
    const TARGET: Ipv6Address = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    #[test]
    fn neighbor_solicit_round_trip() {
        let r = Icmpv6Repr::NeighborSolicit {
            target: TARGET,
            source_ll: Some([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
        };
        let ph = pseudo_header_v6(&SRC, &DST, 58, 32);
        let mut b = [0u8; 32];
        r.emit_into(&mut b, ph).unwrap();
        assert_eq!(&b[..2], &[135, 0]);
        assert_eq!(&b[24..32], &[1, 1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(ph) && p.is_nd());
        assert_eq!(Icmpv6Repr::parse(&p, ph), Ok(r));
        let nd = NdPacket::new_checked(&b[..]).unwrap();
        assert_eq!(nd.target_addr(), TARGET);
        assert_eq!(
            nd.ll_addr(),
            Ok(Some((26, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55])))
        );
    }

    #[test]
    fn neighbor_advert_and_bad_options() {
        let r = Icmpv6Repr::NeighborAdvert {
            flags: 0x60,
            target: TARGET,
            target_ll: Some([2, 0, 0, 0, 0, 9]),
        };
        let mut b = [0u8; 40];
        r.emit_into(&mut b, 0).unwrap();
        // A second option: a source LL option (ignored for NA).
        b[32..40].copy_from_slice(&[1, 1, 9, 9, 9, 9, 9, 9]);
        let nd = NdPacket::new_checked(&b[..]).unwrap();
        assert_eq!(nd.ll_addr(), Ok(Some((26, [2, 0, 0, 0, 0, 9]))));
        assert_eq!(nd.option_iter().count(), 2);
        // A duplicate target LL option is malformed.
        b[32] = 2;
        assert_eq!(
            NdPacket::new_checked(&b[..]).unwrap().ll_addr(),
            Err(Error::Malformed)
        );
        // A zero-length option is malformed.
        b[33] = 0;
        assert_eq!(
            NdPacket::new_checked(&b[..]).unwrap().ll_addr(),
            Err(Error::Malformed)
        );
        // An option running past the end is malformed.
        b[33] = 2;
        assert_eq!(
            NdPacket::new_checked(&b[..]).unwrap().ll_addr(),
            Err(Error::Malformed)
        );
        // No options.
        assert_eq!(NdPacket::new_checked(&b[..24]).unwrap().ll_addr(), Ok(None));
        assert_eq!(NdPacket::new_checked(&b[..23]), Err(Error::Truncated));
        b[0] = ECHO_REQUEST;
        assert_eq!(NdPacket::new_checked(&b[..]), Err(Error::Malformed));
    }

    #[test]
    fn echo() {
        let r = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 9,
        };
        let ph = pseudo_header_v6(&SRC, &DST, 58, 8);
        let mut b = [0u8; 8];
        r.emit_into(&mut b, ph).unwrap();
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, ph), Ok(r));
        assert_eq!(Icmpv6Repr::parse(&p, ph ^ 1), Err(Error::Malformed));
        assert_eq!(Icmpv6Packet::new_checked(&b[..3]), Err(Error::Truncated));
    }
}
