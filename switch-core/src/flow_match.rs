//! `Match`: an OpenFlow 1.3 match (a set of OXM fields, each exact or masked) as a value/mask pair
//! of [`FlowKey`]s, plus the validation an OpenFlow switch does on it (prerequisites, masks,
//! values), answering with the spec's `OFPET_BAD_MATCH` codes.
//!
//! Building never fails: the first problem seen while building is remembered and returned by
//! [`Match::validate`], so a decoder can feed OXM TLVs in wire order and check once.

use core::fmt::{self, Write as _};

use crate::error::OfpError;
use crate::flow::{Field, FlowKey, OFPVID_PRESENT};

/// `OFPXMC_OPENFLOW_BASIC`.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;

pub mod eth_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
}

pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// A match: `value` holds the field values already masked, `mask` the bits that count.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Match {
    pub value: FlowKey,
    pub mask: FlowKey,
    /// Bit `n` set: OXM field number `n` is present.
    fields: u64,
    /// First problem found while building (see [`Match::validate`]).
    error: Option<OfpError>,
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Match({self})")
    }
}

/// Whether OpenFlow 1.3 (plus what Open vSwitch also accepts: L4 ports, ND target) lets `field`
/// carry an arbitrary mask.
pub fn is_maskable(field: Field) -> bool {
    !matches!(
        field,
        Field::InPort
            | Field::InPhyPort
            | Field::EthType
            | Field::VlanPcp
            | Field::IpDscp
            | Field::IpEcn
            | Field::IpProto
            | Field::Icmpv4Type
            | Field::Icmpv4Code
            | Field::Icmpv6Type
            | Field::Icmpv6Code
            | Field::ArpOp
            | Field::Ipv6NdSll
            | Field::Ipv6NdTll
    )
}

impl Match {
    /// The match that matches every packet.
    pub const ANY: Match = Match {
        value: FlowKey::ZERO,
        mask: FlowKey::ZERO,
        fields: 0,
        error: None,
    };

    pub fn new() -> Match {
        Match::ANY
    }

    fn note(&mut self, e: OfpError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Adds `field == value`.
    pub fn set(&mut self, field: Field, value: u128) -> &mut Self {
        self.add(field, value, field.max(), false)
    }

    /// Adds `field & mask == value` (an OXM with the HM bit).
    pub fn set_masked(&mut self, field: Field, value: u128, mask: u128) -> &mut Self {
        self.add(field, value, mask, true)
    }

    /// Builder form of [`Match::set`].
    pub fn with(mut self, field: Field, value: u128) -> Self {
        self.set(field, value);
        self
    }

    /// Builder form of [`Match::set_masked`].
    pub fn with_masked(mut self, field: Field, value: u128, mask: u128) -> Self {
        self.set_masked(field, value, mask);
        self
    }

    /// Adds an OXM TLV by class and field number as a decoder sees it.
    pub fn set_oxm(&mut self, class: u16, field: u8, value: u128, mask: Option<u128>) -> &mut Self {
        match (class, Field::from_oxm(field)) {
            (OFPXMC_OPENFLOW_BASIC, Some(f)) => match mask {
                Some(m) => self.set_masked(f, value, m),
                None => self.set(f, value),
            },
            _ => {
                self.note(OfpError::BAD_MATCH_BAD_FIELD);
                self
            }
        }
    }

    fn add(&mut self, field: Field, value: u128, mask: u128, has_mask: bool) -> &mut Self {
        let bit = 1u64 << (field as u8);
        if self.fields & bit != 0 {
            self.note(OfpError::BAD_MATCH_DUP_FIELD);
            return self;
        }
        if value > field.max() || mask > field.max() {
            self.note(OfpError::BAD_MATCH_BAD_VALUE);
            return self;
        }
        if has_mask && mask != field.max() && !is_maskable(field) {
            self.note(OfpError::BAD_MATCH_BAD_MASK);
            return self;
        }
        if value & !mask != 0 {
            self.note(OfpError::BAD_MATCH_BAD_WILDCARDS);
            return self;
        }
        if field == Field::VlanVid {
            // A VID without OFPVID_PRESENT is meaningless (OFPVID_NONE is exactly 0).
            let present_in_mask = mask & OFPVID_PRESENT as u128 != 0;
            if value & 0x0fff != 0 && (!present_in_mask || value & OFPVID_PRESENT as u128 == 0) {
                self.note(OfpError::BAD_MATCH_BAD_VALUE);
                return self;
            }
        }
        if (field == Field::InPort || field == Field::InPhyPort)
            && (value == 0 || value == 0xffff_ffff)
        {
            // Port 0 does not exist and OFPP_ANY is not a port a packet can come from.
            self.note(OfpError::BAD_MATCH_BAD_VALUE);
            return self;
        }
        self.fields |= bit;
        self.value.set(field, value);
        self.mask.set(field, mask);
        self
    }

    /// Sets `field` to `value/mask` without any check, replacing what was there (used to track
    /// what actions do to a packet while validating them).
    pub fn force(&mut self, field: Field, value: u128, mask: u128) {
        self.fields |= 1u64 << (field as u8);
        self.value.set(field, value & mask);
        self.mask.set(field, mask);
    }

    /// Removes `field` (see [`Match::force`]).
    pub fn unset(&mut self, field: Field) {
        self.fields &= !(1u64 << (field as u8));
        self.value.set(field, 0);
        self.mask.set(field, 0);
    }

    /// The same match without the fields whose mask is all zero (they match everything).
    pub fn normalized(&self) -> Match {
        let mut m = *self;
        for f in self.fields() {
            if self.mask.get(f) == 0 {
                m.unset(f);
            }
        }
        m
    }

    /// Whether OXM field `field` is present.
    pub fn has(&self, field: Field) -> bool {
        self.fields & (1u64 << (field as u8)) != 0
    }

    /// `(value, mask)` of `field`, if present.
    pub fn get(&self, field: Field) -> Option<(u128, u128)> {
        self.has(field)
            .then(|| (self.value.get(field), self.mask.get(field)))
    }

    /// Whether `field` is present and matched exactly against `value`.
    pub fn is_exact(&self, field: Field, value: u128) -> bool {
        self.get(field) == Some((value, field.max()))
    }

    /// The present fields, in OXM order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        Field::ALL.into_iter().filter(|f| self.has(*f))
    }

    /// Whether the match has no field (the table-miss shape).
    pub fn is_empty(&self) -> bool {
        self.fields == 0
    }

    /// Whether `key` matches.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        key.eq_masked(&self.value, &self.mask)
    }

    /// Whether some packet can match both `self` and `other`.
    pub fn overlaps(&self, other: &Match) -> bool {
        let both = self.mask.masked(&other.mask);
        self.value.eq_masked(&other.value, &both)
    }

    /// Whether every packet matching `self` also matches `general` (the "non-strict" relation of
    /// flow-mod modify/delete: `self` is at least as specific as `general`).
    pub fn is_covered_by(&self, general: &Match) -> bool {
        for i in 0..self.mask.w.len() {
            if general.mask.w[i] & !self.mask.w[i] != 0 {
                return false;
            }
        }
        self.value.eq_masked(&general.value, &general.mask)
    }

    /// Whether the packet's eth_type is known to be IPv4 or IPv6.
    fn is_ip(&self) -> bool {
        self.is_exact(Field::EthType, eth_type::IPV4 as u128)
            || self.is_exact(Field::EthType, eth_type::IPV6 as u128)
    }

    fn has_proto(&self, proto: u8) -> bool {
        self.is_exact(Field::IpProto, proto as u128)
    }

    /// Whether the prerequisites of `field` hold in this match (OF1.3 section 7.2.3.8).
    pub fn prereqs_met(&self, field: Field) -> bool {
        use Field::*;
        let v4 = self.is_exact(EthType, eth_type::IPV4 as u128);
        let v6 = self.is_exact(EthType, eth_type::IPV6 as u128);
        match field {
            InPhyPort => self.has(InPort),
            VlanPcp => {
                matches!(self.get(VlanVid), Some((v, m)) if v & m & OFPVID_PRESENT as u128 != 0)
            }
            IpDscp | IpEcn | IpProto => self.is_ip(),
            Ipv4Src | Ipv4Dst => v4,
            TcpSrc | TcpDst => self.is_ip() && self.has_proto(ip_proto::TCP),
            UdpSrc | UdpDst => self.is_ip() && self.has_proto(ip_proto::UDP),
            SctpSrc | SctpDst => self.is_ip() && self.has_proto(ip_proto::SCTP),
            Icmpv4Type | Icmpv4Code => v4 && self.has_proto(ip_proto::ICMP),
            ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha => {
                self.is_exact(EthType, eth_type::ARP as u128)
            }
            Ipv6Src | Ipv6Dst | Ipv6Flabel | Ipv6Exthdr => v6,
            Icmpv6Type | Icmpv6Code => v6 && self.has_proto(ip_proto::ICMPV6),
            Ipv6NdTarget => {
                self.prereqs_met(Icmpv6Type)
                    && (self.is_exact(Icmpv6Type, 135) || self.is_exact(Icmpv6Type, 136))
            }
            Ipv6NdSll => self.prereqs_met(Icmpv6Type) && self.is_exact(Icmpv6Type, 135),
            Ipv6NdTll => self.prereqs_met(Icmpv6Type) && self.is_exact(Icmpv6Type, 136),
            InPort | Metadata | EthDst | EthSrc | EthType | VlanVid | TunnelId => true,
        }
    }

    /// Checks the match as an OpenFlow 1.3 switch does: the first building error (BAD_FIELD,
    /// DUP_FIELD, BAD_VALUE, BAD_MASK, BAD_WILDCARDS), then every field's prerequisites
    /// (BAD_PREREQ).
    pub fn validate(&self) -> Result<(), OfpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for f in self.fields() {
            if !self.prereqs_met(f) {
                return Err(OfpError::BAD_MATCH_BAD_PREREQ);
            }
        }
        Ok(())
    }
}

fn write_mac(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    let b = (v as u64).to_be_bytes();
    write!(
        f,
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

fn write_ipv4(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    let b = (v as u32).to_be_bytes();
    write!(f, "{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

fn write_ipv6(f: &mut fmt::Formatter<'_>, v: u128) -> fmt::Result {
    let b = v.to_be_bytes();
    for i in 0..8 {
        if i > 0 {
            f.write_char(':')?;
        }
        write!(f, "{:x}", u16::from_be_bytes([b[2 * i], b[2 * i + 1]]))?;
    }
    Ok(())
}

/// The ovs-ofctl-like name of a field.
pub fn field_name(field: Field) -> &'static str {
    use Field::*;
    match field {
        InPort => "in_port",
        InPhyPort => "in_phy_port",
        Metadata => "metadata",
        EthDst => "dl_dst",
        EthSrc => "dl_src",
        EthType => "dl_type",
        VlanVid => "vlan_vid",
        VlanPcp => "vlan_pcp",
        IpDscp => "ip_dscp",
        IpEcn => "ip_ecn",
        IpProto => "nw_proto",
        Ipv4Src => "nw_src",
        Ipv4Dst => "nw_dst",
        TcpSrc => "tcp_src",
        TcpDst => "tcp_dst",
        UdpSrc => "udp_src",
        UdpDst => "udp_dst",
        SctpSrc => "sctp_src",
        SctpDst => "sctp_dst",
        Icmpv4Type => "icmp_type",
        Icmpv4Code => "icmp_code",
        ArpOp => "arp_op",
        ArpSpa => "arp_spa",
        ArpTpa => "arp_tpa",
        ArpSha => "arp_sha",
        ArpTha => "arp_tha",
        Ipv6Src => "ipv6_src",
        Ipv6Dst => "ipv6_dst",
        Ipv6Flabel => "ipv6_label",
        Icmpv6Type => "icmpv6_type",
        Icmpv6Code => "icmpv6_code",
        Ipv6NdTarget => "nd_target",
        Ipv6NdSll => "nd_sll",
        Ipv6NdTll => "nd_tll",
        TunnelId => "tun_id",
        Ipv6Exthdr => "ipv6_exthdr",
    }
}

/// Writes a field value the way ovs-ofctl shows it (MACs, dotted quads, hex otherwise).
pub fn write_value(f: &mut fmt::Formatter<'_>, field: Field, v: u128) -> fmt::Result {
    use Field::*;
    match field {
        EthDst | EthSrc | ArpSha | ArpTha | Ipv6NdSll | Ipv6NdTll => write_mac(f, v),
        Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa => write_ipv4(f, v),
        Ipv6Src | Ipv6Dst | Ipv6NdTarget => write_ipv6(f, v),
        EthType | VlanVid | Metadata | TunnelId | Ipv6Flabel | Ipv6Exthdr => write!(f, "{v:#x}"),
        _ => write!(f, "{v}"),
    }
}

/// Displays as `field=value[/mask],...` (or `any` for the empty match).
impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("any");
        }
        let mut first = true;
        for field in self.fields() {
            if !first {
                f.write_char(',')?;
            }
            first = false;
            let (v, m) = (self.value.get(field), self.mask.get(field));
            write!(f, "{}=", field_name(field))?;
            write_value(f, field, v)?;
            if m != field.max() {
                f.write_char('/')?;
                write_value(f, field, m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn tcp() -> Match {
        Match::new()
            .with(Field::EthType, 0x0800)
            .with(Field::IpProto, 6)
    }

    #[test]
    fn tcp_dst_needs_ip_and_tcp() {
        assert_eq!(tcp().with(Field::TcpDst, 80).validate(), Ok(()));
        assert_eq!(
            Match::new().with(Field::TcpDst, 80).validate(),
            Err(OfpError::BAD_MATCH_BAD_PREREQ)
        );
        let udp = Match::new()
            .with(Field::EthType, 0x86dd)
            .with(Field::IpProto, 17)
            .with(Field::TcpDst, 80);
        assert_eq!(udp.validate(), Err(OfpError::BAD_MATCH_BAD_PREREQ));
        // A masked ip_proto cannot satisfy a prerequisite (and is a bad mask anyway).
        let m = Match::new()
            .with(Field::EthType, 0x0800)
            .with_masked(Field::IpProto, 6, 0x0f);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_MASK));
    }

    #[test]
    fn prerequisites_of_every_family() {
        let ok = [
            Match::new()
                .with(Field::EthType, 0x0806)
                .with(Field::ArpOp, 1),
            Match::new()
                .with(Field::EthType, 0x86dd)
                .with(Field::Ipv6Src, 1),
            Match::new()
                .with(Field::EthType, 0x86dd)
                .with(Field::IpProto, 58)
                .with(Field::Icmpv6Type, 135)
                .with(Field::Ipv6NdTarget, 5)
                .with(Field::Ipv6NdSll, 7),
            Match::new()
                .with(Field::VlanVid, 0x1005)
                .with(Field::VlanPcp, 3),
            Match::new()
                .with(Field::InPort, 1)
                .with(Field::InPhyPort, 1),
            Match::new()
                .with(Field::EthType, 0x0800)
                .with(Field::IpProto, 1)
                .with(Field::Icmpv4Type, 8),
            Match::new()
                .with(Field::EthType, 0x0800)
                .with(Field::IpProto, 132)
                .with(Field::SctpDst, 8),
        ];
        for m in ok {
            assert_eq!(m.validate(), Ok(()), "{m}");
        }
        let bad = [
            Match::new().with(Field::ArpOp, 1),
            Match::new()
                .with(Field::EthType, 0x0800)
                .with(Field::Ipv6Src, 1),
            Match::new()
                .with(Field::EthType, 0x86dd)
                .with(Field::Ipv4Src, 1),
            Match::new()
                .with(Field::EthType, 0x86dd)
                .with(Field::IpProto, 58)
                .with(Field::Icmpv6Type, 136)
                .with(Field::Ipv6NdSll, 7),
            Match::new().with(Field::VlanPcp, 3),
            Match::new().with(Field::VlanVid, 0).with(Field::VlanPcp, 3),
            Match::new().with(Field::InPhyPort, 1),
            Match::new().with(Field::IpDscp, 1),
            Match::new()
                .with(Field::EthType, 0x86dd)
                .with(Field::IpProto, 1)
                .with(Field::Icmpv4Type, 8),
        ];
        for m in bad {
            assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_PREREQ), "{m}");
        }
    }

    #[test]
    fn bad_values_masks_and_fields() {
        let m = Match::new().with(Field::IpDscp, 64);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_VALUE));
        let m = Match::new().with(Field::VlanVid, 0x0005);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_VALUE));
        let m = Match::new().with(Field::InPort, 0);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_VALUE));
        let m = Match::new().with_masked(Field::EthType, 0x0800, 0xff00);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_MASK));
        let m = Match::new().with_masked(Field::EthDst, 0x0101, 0x0100);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_WILDCARDS));
        let m = Match::new().with(Field::EthDst, 1).with(Field::EthDst, 2);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_DUP_FIELD));
        let mut m = Match::new();
        m.set_oxm(OFPXMC_OPENFLOW_BASIC, 34, 1, None); // MPLS label: not supported
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_FIELD));
        let mut m = Match::new();
        m.set_oxm(0x0001, 3, 1, None); // NXM class
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_FIELD));
        let mut m = Match::new();
        m.set_oxm(OFPXMC_OPENFLOW_BASIC, 5, 0x0800, Some(0xffff));
        assert_eq!(m.validate(), Ok(()), "an all-ones mask is exact");
        // The first error is the one reported.
        let m = Match::new().with(Field::IpDscp, 64).with(Field::TcpDst, 1);
        assert_eq!(m.validate(), Err(OfpError::BAD_MATCH_BAD_VALUE));
    }

    #[test]
    fn vlan_any_tagged_is_valid() {
        let m = Match::new().with_masked(Field::VlanVid, 0x1000, 0x1000);
        assert_eq!(m.validate(), Ok(()));
        let mut k = FlowKey::ZERO;
        k.set(Field::VlanVid, 0x1064);
        assert!(m.matches(&k));
        k.set(Field::VlanVid, 0);
        assert!(!m.matches(&k));
    }

    #[test]
    fn normalized_drops_zero_masks() {
        let m = Match::new()
            .with(Field::InPort, 1)
            .with_masked(Field::EthDst, 0, 0);
        assert_eq!(m.normalized(), Match::new().with(Field::InPort, 1));
        assert!(!m.normalized().has(Field::EthDst));
    }

    #[test]
    fn overlap_and_cover() {
        let a = Match::new().with(Field::InPort, 1);
        let b = Match::new().with(Field::EthType, 0x0800);
        let c = Match::new().with(Field::InPort, 2);
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        let ab = a.with(Field::EthType, 0x0800);
        assert!(ab.is_covered_by(&a));
        assert!(ab.is_covered_by(&Match::ANY));
        assert!(!a.is_covered_by(&ab));
        assert!(!ab.is_covered_by(&c));
    }

    #[test]
    fn display_like_ovs_ofctl() {
        let m = tcp()
            .with_masked(Field::Ipv4Src, 0x0a00_0000, 0xff00_0000)
            .with(Field::TcpDst, 22)
            .with(Field::EthDst, 0x0000_1122_3344_5566);
        assert_eq!(
            m.to_string(),
            "dl_dst=11:22:33:44:55:66,dl_type=0x800,nw_proto=6,nw_src=10.0.0.0/255.0.0.0,tcp_dst=22"
        );
        assert_eq!(Match::ANY.to_string(), "any");
    }
}
