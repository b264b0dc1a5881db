//! The internet checksum (RFC 1071), its incremental update (RFC 1624), and SCTP's CRC32c
//! (RFC 3309 / RFC 9260 appendix A).
//!
//! Sums here are one's complement sums folded to 16 bits but *not* complemented; the value
//! stored in a header is `!sum`.

use super::ipv4::Ipv4Address;
use super::ipv6::Ipv6Address;

/// Folds a wide accumulator into a 16-bit one's complement sum.
#[inline]
pub const fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's complement sum of `data` taken as big-endian 16-bit words (a trailing odd byte is
/// padded with zero), folded to 16 bits.
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let (words, rest) = data.as_chunks::<8>();
    for c in words {
        let w = u64::from_be_bytes(*c);
        // Add the four 16-bit words of `w` as two 32-bit halves: carries stay in range.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let (pairs, odd) = rest.as_chunks::<2>();
    for c in pairs {
        acc += u64::from(u16::from_be_bytes(*c));
    }
    if let [b] = odd {
        acc += u64::from(*b) << 8;
    }
    fold(acc)
}

/// One's complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The checksum to store for `data` (whose checksum field must be zero): `!data(data)`.
pub fn checksum(bytes: &[u8]) -> u16 {
    !data(bytes)
}

/// Whether `bytes` (including its stored checksum) verifies, optionally with a pseudo-header sum.
pub fn verify(pseudo: u16, bytes: &[u8]) -> bool {
    combine(&[pseudo, data(bytes)]) == 0xffff
}

/// Sum of the IPv4 pseudo-header for TCP/UDP (`len` is the upper-layer length).
pub fn pseudo_header_v4(src: &Ipv4Address, dst: &Ipv4Address, proto: u8, len: u32) -> u16 {
    let a = u64::from(u32::from_be_bytes(*src));
    let b = u64::from(u32::from_be_bytes(*dst));
    fold((a >> 16) + (a & 0xffff) + (b >> 16) + (b & 0xffff) + u64::from(proto) + u64::from(len))
}

/// Sum of the IPv6 pseudo-header for TCP/UDP/ICMPv6 (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: &Ipv6Address, dst: &Ipv6Address, proto: u8, len: u32) -> u16 {
    combine(&[data(src), data(dst), fold(u64::from(len)), u16::from(proto)])
}

/// RFC 1624 equation 3: the new checksum after one 16-bit word of the covered data changed
/// from `old` to `new`. `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!hc) + u64::from(!old) + u64::from(new))
}

/// RFC 1624 for a run of words: `old` and `new` are the covered bytes before and after the
/// change, of equal length, starting at an even offset from the start of the checksummed data.
#[inline]
pub fn update(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    !fold(u64::from(!hc) + u64::from(!data(old)) + u64::from(data(new)))
}

/// `update()` for a UDP checksum: a zero checksum means "none" and stays zero; a result of
/// zero is sent as 0xffff (RFC 768).
#[inline]
pub fn update_udp(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    if hc == 0 {
        return 0;
    }
    match update(hc, old, new) {
        0 => 0xffff,
        c => c,
    }
}

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C: [u32; 256] = crc32c_table();

/// CRC32c (Castagnoli) of `data`, as SCTP uses it. SCTP stores it little-endian
/// (`crc.to_le_bytes()`) in its checksum field, computed with that field zeroed.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_update(0, data)
}

/// Continues a CRC32c: `crc32c_update(crc32c(a), b) == crc32c(a ++ b)`.
pub fn crc32c_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC32C[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    // A well-known IPv4 header (Wikipedia "IPv4 header checksum") whose checksum is b861.
    #[test]
    fn ipv4_header_known_value() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(verify(0, &h));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn long_input_matches_word_loop() {
        let bytes: alloc::vec::Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut acc: u64 = 0;
        for c in bytes.chunks(2) {
            acc += u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0));
        }
        assert_eq!(data(&bytes), fold(acc));
    }

    // RFC 1624 section 4 example: HC = DD2F, m = 5555 -> m' = 3285, HC' = 0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = [h[12], h[13], h[14], h[15]];
        let new = [10, 1, 2, 3];
        h[12..16].copy_from_slice(&new);
        let c = update(0xb861, &old, &new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verify(0, &h));
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), c);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        assert_eq!(update_udp(0, &[1, 2], &[3, 4]), 0);
    }

    // RFC 3720 B.4 / common test vector: crc32c("123456789") = e3069283.
    #[test]
    fn crc32c_known_values() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        assert_eq!(crc32c_update(crc32c(b"1234"), b"56789"), 0xe306_9283);
    }

    #[test]
    fn pseudo_headers() {
        // 10.0.0.1 -> 10.0.0.2, UDP, length 8: 0a00+0001+0a00+0002+0011+0008.
        assert_eq!(
            pseudo_header_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 17, 8),
            0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x11 + 0x08
        );
        let mut a = [0u8; 16];
        a[15] = 1;
        let mut b = [0u8; 16];
        b[15] = 2;
        assert_eq!(pseudo_header_v6(&a, &b, 58, 0x1_0000), 1 + 2 + 1 + 58);
    }
}
