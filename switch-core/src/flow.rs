//! `FlowKey`: the fields of a packet that OpenFlow 1.3 can match, packed into fixed 64-bit words.
//!
//! The key is a flat array of words so that masking, hashing and comparing are word loops
//! (the classifier, the megaflow cache and the exact-match cache all work on words). Each OXM
//! basic field has a fixed place (`Field::info`). Fields that are mutually exclusive by their
//! prerequisites share a place, as in Open vSwitch: ARP SPA/TPA share with IPv4 src/dst, the
//! TCP/UDP/SCTP ports share one pair, ICMPv4/ICMPv6 type and code share, ARP SHA/THA share with
//! ND SLL/TLL. A prerequisite (eth_type, ip_proto) always tells which one a key holds.
//!
//! A field that the packet does not carry (or carries truncated) is zero.

/// Number of 64-bit words in a key.
pub const KEY_WORDS: usize = 16;

/// `vlan_vid` bit that says a VLAN tag is present (OpenFlow 1.3 `OFPVID_PRESENT`).
pub const OFPVID_PRESENT: u16 = 0x1000;

/// OpenFlow 1.3 OXM basic-class field numbers (`enum oxm_ofb_match_fields`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    InPort = 0,
    InPhyPort = 1,
    Metadata = 2,
    EthDst = 3,
    EthSrc = 4,
    EthType = 5,
    VlanVid = 6,
    VlanPcp = 7,
    IpDscp = 8,
    IpEcn = 9,
    IpProto = 10,
    Ipv4Src = 11,
    Ipv4Dst = 12,
    TcpSrc = 13,
    TcpDst = 14,
    UdpSrc = 15,
    UdpDst = 16,
    SctpSrc = 17,
    SctpDst = 18,
    Icmpv4Type = 19,
    Icmpv4Code = 20,
    ArpOp = 21,
    ArpSpa = 22,
    ArpTpa = 23,
    ArpSha = 24,
    ArpTha = 25,
    Ipv6Src = 26,
    Ipv6Dst = 27,
    Ipv6Flabel = 28,
    Icmpv6Type = 29,
    Icmpv6Code = 30,
    Ipv6NdTarget = 31,
    Ipv6NdSll = 32,
    Ipv6NdTll = 33,
    TunnelId = 38,
    Ipv6Exthdr = 39,
}

/// Where a field lives in the key and how wide it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// First word. 128-bit fields use `word` (high half) and `word + 1` (low half).
    pub word: u8,
    /// Bit offset of the field's least significant bit inside its word (0 for 128-bit fields).
    pub shift: u8,
    /// Width in bits as OpenFlow defines it (vlan_vid is 13 bits with `OFPVID_PRESENT`).
    pub bits: u8,
    /// Length in bytes of the OXM payload (without mask).
    pub oxm_len: u8,
}

const fn fi(word: u8, shift: u8, bits: u8, oxm_len: u8) -> FieldInfo {
    FieldInfo {
        word,
        shift,
        bits,
        oxm_len,
    }
}

impl Field {
    /// Every field, in OXM number order.
    pub const ALL: [Field; 36] = [
        Field::InPort,
        Field::InPhyPort,
        Field::Metadata,
        Field::EthDst,
        Field::EthSrc,
        Field::EthType,
        Field::VlanVid,
        Field::VlanPcp,
        Field::IpDscp,
        Field::IpEcn,
        Field::IpProto,
        Field::Ipv4Src,
        Field::Ipv4Dst,
        Field::TcpSrc,
        Field::TcpDst,
        Field::UdpSrc,
        Field::UdpDst,
        Field::SctpSrc,
        Field::SctpDst,
        Field::Icmpv4Type,
        Field::Icmpv4Code,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::Ipv6Flabel,
        Field::Icmpv6Type,
        Field::Icmpv6Code,
        Field::Ipv6NdTarget,
        Field::Ipv6NdSll,
        Field::Ipv6NdTll,
        Field::TunnelId,
        Field::Ipv6Exthdr,
    ];

    /// The field with OXM number `n`, if ironflow knows it.
    pub fn from_oxm(n: u8) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| *f as u8 == n)
    }

    /// The field's place in the key.
    pub const fn info(self) -> FieldInfo {
        match self {
            Field::Metadata => fi(0, 0, 64, 8),
            Field::InPort => fi(1, 32, 32, 4),
            Field::InPhyPort => fi(1, 0, 32, 4),
            Field::EthDst => fi(2, 16, 48, 6),
            Field::EthType => fi(2, 0, 16, 2),
            Field::EthSrc => fi(3, 16, 48, 6),
            Field::VlanVid => fi(3, 0, 13, 2),
            Field::VlanPcp => fi(4, 56, 3, 1),
            Field::IpDscp => fi(4, 48, 6, 1),
            Field::IpEcn => fi(4, 40, 2, 1),
            Field::IpProto => fi(4, 32, 8, 1),
            Field::Ipv4Src | Field::ArpSpa => fi(4, 0, 32, 4),
            Field::Ipv4Dst | Field::ArpTpa => fi(5, 32, 32, 4),
            Field::TcpSrc | Field::UdpSrc | Field::SctpSrc => fi(5, 16, 16, 2),
            Field::TcpDst | Field::UdpDst | Field::SctpDst => fi(5, 0, 16, 2),
            Field::Icmpv4Type | Field::Icmpv6Type => fi(6, 56, 8, 1),
            Field::Icmpv4Code | Field::Icmpv6Code => fi(6, 48, 8, 1),
            Field::ArpOp => fi(6, 32, 16, 2),
            Field::Ipv6Flabel => fi(6, 0, 20, 4),
            Field::ArpSha | Field::Ipv6NdSll => fi(7, 16, 48, 6),
            Field::Ipv6Exthdr => fi(7, 0, 9, 2),
            Field::ArpTha | Field::Ipv6NdTll => fi(8, 16, 48, 6),
            Field::Ipv6Src => fi(9, 0, 128, 16),
            Field::Ipv6Dst => fi(11, 0, 128, 16),
            Field::Ipv6NdTarget => fi(13, 0, 128, 16),
            Field::TunnelId => fi(15, 0, 64, 8),
        }
    }

    /// All-ones value of the field's width.
    pub const fn max(self) -> u128 {
        let bits = self.info().bits;
        if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        }
    }
}

/// Internal (non-OXM) bits kept in word 8's low 16 bits.
pub mod internal {
    /// The packet is an IP fragment.
    pub const FRAG_ANY: u64 = 1;
    /// The packet is a non-first IP fragment (it carries no L4 header).
    pub const FRAG_LATER: u64 = 2;
    /// Word and mask of the fragment bits.
    pub const FRAG_WORD: usize = 8;
    pub const FRAG_MASK: u64 = 3;
}

/// The matchable fields of one packet. Also used as a mask (a set bit means "this bit counts").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub w: [u64; KEY_WORDS],
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_map();
        for field in Field::ALL {
            let v = self.get(field);
            if v != 0 {
                d.entry(&field, &v);
            }
        }
        d.finish()
    }
}

impl FlowKey {
    /// A key with every bit zero (also: the mask that matches everything).
    pub const ZERO: FlowKey = FlowKey { w: [0; KEY_WORDS] };

    /// The value of `field`, right-aligned.
    #[inline]
    pub fn get(&self, field: Field) -> u128 {
        let i = field.info();
        let w = i.word as usize;
        if i.bits == 128 {
            ((self.w[w] as u128) << 64) | self.w[w + 1] as u128
        } else if i.bits == 64 {
            self.w[w] as u128
        } else {
            ((self.w[w] >> i.shift) & ((1u64 << i.bits) - 1)) as u128
        }
    }

    /// Sets `field` to `value` (bits above the field's width are ignored).
    #[inline]
    pub fn set(&mut self, field: Field, value: u128) {
        let i = field.info();
        let w = i.word as usize;
        if i.bits == 128 {
            self.w[w] = (value >> 64) as u64;
            self.w[w + 1] = value as u64;
        } else if i.bits == 64 {
            self.w[w] = value as u64;
        } else {
            let m = ((1u64 << i.bits) - 1) << i.shift;
            self.w[w] = (self.w[w] & !m) | (((value as u64) << i.shift) & m);
        }
    }

    /// Sets every bit of `field` (for building masks).
    #[inline]
    pub fn set_exact(&mut self, field: Field) {
        self.set(field, field.max());
    }

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
        out
    }

    /// Whether `self` and `other` agree on every bit set in `mask`.
    #[inline]
    pub fn eq_masked(&self, other: &FlowKey, mask: &FlowKey) -> bool {
        let mut diff = 0;
        for i in 0..KEY_WORDS {
            diff |= (self.w[i] ^ other.w[i]) & mask.w[i];
        }
        diff == 0
    }

    /// Bitwise OR (union of two masks).
    #[inline]
    pub fn or(&self, other: &FlowKey) -> FlowKey {
        let mut out = *self;
        for i in 0..KEY_WORDS {
            out.w[i] |= other.w[i];
        }
        out
    }

    /// A fast 64-bit hash of the whole key (used by the caches; not DoS-resistant on its own).
    #[inline]
    pub fn hash64(&self) -> u64 {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
        for &x in &self.w {
            h = (h ^ x).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 32;
        }
        h
    }

    /// The bits of the key masked by `mask`, hashed.
    #[inline]
    pub fn hash_masked(&self, mask: &FlowKey) -> u64 {
        self.masked(mask).hash64()
    }

    pub fn in_port(&self) -> u32 {
        self.get(Field::InPort) as u32
    }
    pub fn eth_type(&self) -> u16 {
        self.get(Field::EthType) as u16
    }
    pub fn ip_proto(&self) -> u8 {
        self.get(Field::IpProto) as u8
    }
    /// The 12-bit VLAN id, or `None` for an untagged packet.
    pub fn vlan(&self) -> Option<u16> {
        let v = self.get(Field::VlanVid) as u16;
        (v & OFPVID_PRESENT != 0).then_some(v & 0x0fff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap_unless_shared_on_purpose() {
        // Two fields may share bits only if they are declared as sharing (same info).
        for a in Field::ALL {
            for b in Field::ALL {
                if a == b || a.info() == b.info() {
                    continue;
                }
                let mut ka = FlowKey::ZERO;
                ka.set_exact(a);
                let mut kb = FlowKey::ZERO;
                kb.set_exact(b);
                let overlap = ka.w.iter().zip(kb.w.iter()).any(|(x, y)| x & y != 0);
                assert!(!overlap, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn get_set_round_trip() {
        let mut k = FlowKey::ZERO;
        for f in Field::ALL {
            k.set(f, 0x0123_4567_89ab_cdef_0011_2233_4455_6677 & f.max());
            assert_eq!(
                k.get(f),
                0x0123_4567_89ab_cdef_0011_2233_4455_6677 & f.max(),
                "{f:?}"
            );
        }
    }
}
