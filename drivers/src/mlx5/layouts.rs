//! The one field table the mlx5 driver and the device model both use.
//!
//! Command and context layouts come from `layouts.txt` (a copy of `shared/mlx5/layouts.txt`,
//! itself computed from Linux's `mlx5_ifc.h`), turned into constants by `gen_layouts.py`
//! ([`ifc`]). Structures that file does not cover (init segment, command entry, mailbox, EQE,
//! CQE, WQE segments) are written out below from `docs/mlx5.md` §2–§5. A wrong entry here is
//! seen identically by the driver and the model, and shows as a mismatch against the real
//! hardware trace in `drivers/tests/mlx5_golden.rs`.
//!
//! Conventions (ifc): every word is big-endian; a [`Field`] is bits `hi..=lo` of the 32-bit
//! word at byte offset `off`, bit 31 being the most significant bit of the word's first byte.
//! Accessors never panic: a field that lies outside the slice reads as 0 and is not written.

#[path = "layouts_gen.rs"]
pub mod ifc;

/// A bit field: bits `hi..=lo` of the big-endian dword at byte offset `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub off: usize,
    pub hi: u8,
    pub lo: u8,
}

impl Field {
    pub const fn new(off: usize, hi: u8, lo: u8) -> Field {
        Field { off, hi, lo }
    }

    /// The same field in a structure embedded at byte `base` of an enclosing one.
    pub const fn at(self, base: usize) -> Field {
        Field {
            off: self.off + base,
            hi: self.hi,
            lo: self.lo,
        }
    }

    const fn mask(self) -> u32 {
        let width = (self.hi - self.lo + 1) as u32;
        if width >= 32 {
            u32::MAX
        } else {
            ((1u32 << width) - 1) << self.lo
        }
    }

    /// Reads the field from `buf` (0 if it lies outside).
    #[inline]
    pub fn get(self, buf: &[u8]) -> u32 {
        (read_be32(buf, self.off) & self.mask()) >> self.lo
    }

    /// Writes `value` (truncated to the field's width) into `buf`, keeping the other bits.
    #[inline]
    pub fn set(self, buf: &mut [u8], value: u32) {
        let Some(word) = buf.get_mut(self.off..self.off.wrapping_add(4)) else {
            return;
        };
        let old = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        let new = (old & !self.mask()) | ((value << self.lo) & self.mask());
        word.copy_from_slice(&new.to_be_bytes());
    }
}

/// A byte range: `len` bytes from `off` (`len` 0: a flexible array starting at `off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes {
    pub off: usize,
    pub len: usize,
}

impl Bytes {
    pub const fn new(off: usize, len: usize) -> Bytes {
        Bytes { off, len }
    }

    /// The same range in a structure embedded at byte `base` of an enclosing one.
    pub const fn at(self, base: usize) -> Bytes {
        Bytes {
            off: self.off + base,
            len: self.len,
        }
    }

    /// A big-endian 64-bit value at the start of the range (two words, high first).
    #[inline]
    pub fn get_u64(self, buf: &[u8]) -> u64 {
        read_be64(buf, self.off)
    }

    #[inline]
    pub fn set_u64(self, buf: &mut [u8], value: u64) {
        write_be64(buf, self.off, value);
    }
}

/// The big-endian dword at `off` (0 if out of range).
#[inline]
pub fn read_be32(buf: &[u8], off: usize) -> u32 {
    match buf.get(off..off.wrapping_add(4)) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

#[inline]
pub fn write_be32(buf: &mut [u8], off: usize, value: u32) {
    if let Some(b) = buf.get_mut(off..off.wrapping_add(4)) {
        b.copy_from_slice(&value.to_be_bytes());
    }
}

#[inline]
pub fn read_be64(buf: &[u8], off: usize) -> u64 {
    (u64::from(read_be32(buf, off)) << 32) | u64::from(read_be32(buf, off.wrapping_add(4)))
}

#[inline]
pub fn write_be64(buf: &mut [u8], off: usize, value: u64) {
    write_be32(buf, off, (value >> 32) as u32);
    write_be32(buf, off.wrapping_add(4), value as u32);
}

/// The generic header of every command input and output (docs/mlx5.md §3.5).
pub mod hdr {
    use super::Field;
    pub const OPCODE: Field = Field::new(0x00, 31, 16);
    pub const UID: Field = Field::new(0x00, 15, 0);
    pub const OP_MOD: Field = Field::new(0x04, 15, 0);
    pub const STATUS: Field = Field::new(0x00, 31, 24);
    pub const SYNDROME: Field = Field::new(0x04, 31, 0);
    /// Size of the input and output header.
    pub const SIZE: usize = 0x10;
}

/// BAR0 initialization segment (docs/mlx5.md §2). Register offsets, each a BE32 word.
pub mod init_seg {
    pub const FW_REV: usize = 0x000;
    pub const CMDIF_REV_FW_SUB: usize = 0x004;
    pub const CMDQ_ADDR_H: usize = 0x010;
    pub const CMDQ_ADDR_L_SZ: usize = 0x014;
    pub const CMD_DBELL: usize = 0x018;
    pub const INITIALIZING: usize = 0x1fc;
    /// Bit 31 of [`INITIALIZING`].
    pub const INITIALIZING_BIT: u32 = 1 << 31;
    pub const HEALTH: usize = 0x200;
    pub const HEALTH_FW_VER: usize = 0x230;
    /// Word holding rfr_severity (byte 0x238) ... ; bit 31 = rfr.
    pub const HEALTH_RFR_SEVERITY: usize = 0x238;
    /// Word at 0x23c: irisc_index [31:24], synd [23:16], ext_synd [15:0].
    pub const HEALTH_SYND: usize = 0x23c;
    pub const HEALTH_COUNTER: usize = 0x1010;
    /// The command interface revision this driver speaks.
    pub const CMDIF_REV: u32 = 5;
    /// Size of the init segment before UAR page 1.
    pub const SIZE: usize = 0x1000;
}

/// Command queue entry, 64 bytes (docs/mlx5.md §3.1).
pub mod cmd_entry {
    pub const TYPE: usize = 0x00;
    pub const IN_LEN: usize = 0x04;
    pub const IN_MBOX: usize = 0x08;
    pub const IN_INLINE: usize = 0x10;
    pub const OUT_INLINE: usize = 0x20;
    pub const OUT_MBOX: usize = 0x30;
    pub const OUT_LEN: usize = 0x38;
    pub const TOKEN: usize = 0x3c;
    pub const SIGNATURE: usize = 0x3d;
    pub const STATUS_OWN: usize = 0x3f;
    pub const SIZE: usize = 0x40;
    pub const PCI_CMD_XPORT: u8 = 0x07;
    pub const INLINE_LEN: usize = 16;
}

/// Command mailbox block, 576 bytes (docs/mlx5.md §3.2).
pub mod mailbox {
    pub const DATA_LEN: usize = 512;
    pub const NEXT: usize = 0x230;
    pub const BLOCK_NUM: usize = 0x238;
    pub const TOKEN: usize = 0x23d;
    pub const CTRL_SIG: usize = 0x23e;
    pub const SIG: usize = 0x23f;
    pub const SIZE: usize = 0x240;
    /// Mailboxes are placed on this alignment (the device requires the mailbox size rounded
    /// up to a power of two).
    pub const ALIGN: usize = 1024;
}

/// Event queue entry, 64 bytes (docs/mlx5.md §6).
pub mod eqe {
    pub const TYPE: usize = 0x01;
    pub const SUB_TYPE: usize = 0x03;
    pub const DATA: usize = 0x20;
    /// Page request: function id (BE16) and signed page count (BE32).
    pub const PAGE_FUNC_ID: usize = 0x22;
    pub const PAGE_NUM: usize = 0x24;
    /// CQ error: cqn (24 bits of the BE32) and syndrome byte.
    pub const CQ_ERR_CQN: usize = 0x20;
    pub const CQ_ERR_SYND: usize = 0x2b;
    /// Port change: port number in bits 7:4 of this byte.
    pub const PORT: usize = 0x28;
    pub const OWNER: usize = 0x3f;
    pub const SIZE: usize = 0x40;

    pub const TYPE_COMP: u8 = 0x00;
    pub const TYPE_CQ_ERROR: u8 = 0x04;
    pub const TYPE_WQ_CATAS: u8 = 0x05;
    pub const TYPE_INTERNAL_ERROR: u8 = 0x08;
    pub const TYPE_PORT_CHANGE: u8 = 0x09;
    pub const TYPE_CMD: u8 = 0x0a;
    pub const TYPE_PAGE_REQUEST: u8 = 0x0b;
    pub const PORT_SUB_DOWN: u8 = 1;
    pub const PORT_SUB_ACTIVE: u8 = 4;
}

/// Completion queue entry, 64 bytes (docs/mlx5.md §5.3).
pub mod cqe {
    pub const L4_L3_HDR_TYPE: usize = 0x1d;
    pub const VLAN_INFO: usize = 0x1e;
    pub const BYTE_CNT: usize = 0x2c;
    pub const SOP_DROP_QPN: usize = 0x38;
    pub const WQE_COUNTER: usize = 0x3c;
    pub const VENDOR_SYND: usize = 0x36;
    pub const SYNDROME: usize = 0x37;
    pub const OP_OWN: usize = 0x3f;
    pub const SIZE: usize = 0x40;

    pub const OP_REQ: u8 = 0x0;
    pub const OP_RESP_SEND: u8 = 0x2;
    pub const OP_REQ_ERR: u8 = 0xd;
    pub const OP_RESP_ERR: u8 = 0xe;
    pub const OP_INVALID: u8 = 0xf;
    pub const SYND_LOCAL_LENGTH: u8 = 0x01;
    pub const SYND_LOCAL_PROT: u8 = 0x04;
}

/// Send WQE segments (docs/mlx5.md §5.1). Offsets within the WQE.
pub mod wqe {
    /// Control segment: opc_mod [31:24], wqe_index [23:8], opcode [7:0].
    pub const CTRL_OPCODE: usize = 0x00;
    /// Control segment: sqn [31:8], ds [5:0].
    pub const CTRL_QPN_DS: usize = 0x04;
    /// fm_ce_se byte; CE in bits 3:2.
    pub const CTRL_FM_CE_SE: usize = 0x0b;
    pub const ETH_CS_FLAGS: usize = 0x14;
    pub const ETH_INLINE_SZ: usize = 0x1c;
    pub const ETH_INLINE: usize = 0x1e;
    /// Data segment: byte_count, lkey, address (BE64).
    pub const DSEG_BYTE_COUNT: usize = 0x0;
    pub const DSEG_LKEY: usize = 0x4;
    pub const DSEG_ADDR: usize = 0x8;
    pub const DS_SIZE: usize = 16;
    pub const BB_SIZE: usize = 64;
    pub const OP_SEND: u8 = 0x0a;
    pub const OP_NOP: u8 = 0x00;
    pub const CE_ALWAYS: u8 = 2 << 2;
    /// Smallest inline header: Ethernet + one VLAN tag (Linux, DPDK).
    pub const MIN_INLINE: usize = 18;
}

/// UAR page registers (docs/mlx5.md §5.6), offsets within the 4 KiB page.
pub mod uar {
    pub const CQ_DB: usize = 0x020;
    pub const EQ_DB_ARM: usize = 0x040;
    pub const EQ_DB_NOARM: usize = 0x048;
    pub const BF: usize = 0x800;
    pub const PAGE: usize = 0x1000;
}

/// Command opcodes (docs/mlx5.md §4).
pub mod op {
    pub const QUERY_HCA_CAP: u16 = 0x100;
    pub const QUERY_ADAPTER: u16 = 0x101;
    pub const INIT_HCA: u16 = 0x102;
    pub const TEARDOWN_HCA: u16 = 0x103;
    pub const ENABLE_HCA: u16 = 0x104;
    pub const DISABLE_HCA: u16 = 0x105;
    pub const QUERY_PAGES: u16 = 0x107;
    pub const MANAGE_PAGES: u16 = 0x108;
    pub const SET_HCA_CAP: u16 = 0x109;
    pub const QUERY_ISSI: u16 = 0x10a;
    pub const SET_ISSI: u16 = 0x10b;
    pub const QUERY_SPECIAL_CONTEXTS: u16 = 0x203;
    pub const CREATE_EQ: u16 = 0x301;
    pub const DESTROY_EQ: u16 = 0x302;
    pub const CREATE_CQ: u16 = 0x400;
    pub const DESTROY_CQ: u16 = 0x401;
    pub const QUERY_VPORT_STATE: u16 = 0x750;
    pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
    pub const MODIFY_NIC_VPORT_CONTEXT: u16 = 0x755;
    pub const ALLOC_PD: u16 = 0x800;
    pub const DEALLOC_PD: u16 = 0x801;
    pub const ALLOC_UAR: u16 = 0x802;
    pub const DEALLOC_UAR: u16 = 0x803;
    pub const ACCESS_REG: u16 = 0x805;
    pub const NOP: u16 = 0x80d;
    pub const ALLOC_TRANSPORT_DOMAIN: u16 = 0x816;
    pub const DEALLOC_TRANSPORT_DOMAIN: u16 = 0x817;
    pub const CREATE_TIR: u16 = 0x900;
    pub const DESTROY_TIR: u16 = 0x902;
    pub const CREATE_SQ: u16 = 0x904;
    pub const MODIFY_SQ: u16 = 0x905;
    pub const DESTROY_SQ: u16 = 0x906;
    pub const CREATE_RQ: u16 = 0x908;
    pub const MODIFY_RQ: u16 = 0x909;
    pub const DESTROY_RQ: u16 = 0x90a;
    pub const CREATE_TIS: u16 = 0x912;
    pub const DESTROY_TIS: u16 = 0x914;
    pub const SET_FLOW_TABLE_ROOT: u16 = 0x92f;
    pub const CREATE_FLOW_TABLE: u16 = 0x930;
    pub const DESTROY_FLOW_TABLE: u16 = 0x931;
    pub const CREATE_FLOW_GROUP: u16 = 0x933;
    pub const DESTROY_FLOW_GROUP: u16 = 0x934;
    pub const SET_FLOW_TABLE_ENTRY: u16 = 0x936;
    pub const DELETE_FLOW_TABLE_ENTRY: u16 = 0x938;
}

/// Access-register ids (docs/mlx5.md §4.7).
pub mod reg {
    pub const PMTU: u16 = 0x5003;
    pub const PTYS: u16 = 0x5004;
    pub const PAOS: u16 = 0x5006;
    pub const HOST_ENDIANNESS: u16 = 0x7004;
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    #[test]
    fn field_get_set_big_endian() {
        let mut b = [0u8; 8];
        let f = Field::new(4, 23, 16);
        f.set(&mut b, 0xab);
        assert_eq!(b, [0, 0, 0, 0, 0, 0xab, 0, 0]);
        assert_eq!(f.get(&b), 0xab);
        Field::new(0, 31, 0).set(&mut b, 0x0102_0304);
        assert_eq!(&b[..4], &[1, 2, 3, 4]);
        // Out of range: reads 0, writes nothing, never panics.
        assert_eq!(Field::new(6, 31, 0).get(&b), 0);
        let before = b;
        Field::new(usize::MAX - 1, 31, 0).set(&mut b, 7);
        assert_eq!(b, before);
        assert_eq!(read_be32(&b, usize::MAX - 2), 0);
    }

    /// Every constant in the generated module matches its line in layouts.txt.
    #[test]
    fn generated_table_matches_text() {
        let text = include_str!("layouts.txt");
        let generated = include_str!("layouts_gen.rs");
        let mut structs = 0;
        let mut current = String::new();
        let mut checked = 0;
        let gen_lines: Vec<&str> = generated.lines().collect();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                current = rest.split(':').next().unwrap().into();
                structs += 1;
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() < 3 || !line.starts_with("0x") || !line.contains('[') {
                continue;
            }
            let off = parts[0];
            let name = line.rsplit(' ').next().unwrap();
            if name.contains("reserved") {
                continue;
            }
            let bits = &line[line.find('[').unwrap() + 1..line.find(']').unwrap()];
            let Some((hi, lo)) = bits.split_once(':') else {
                continue; // "pas[] (flex, ...)": a flexible array, not a bit field
            };
            let konst: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let want = alloc::format!(
                "pub const {konst}: Field = Field::new({off}, {}, {});",
                hi.trim(),
                lo.trim()
            );
            // The constant exists in this struct's module (first definition wins for names
            // that repeat inside one struct, so only check presence of the exact line).
            let module = alloc::format!("pub mod {current} {{");
            let start = gen_lines.iter().position(|l| *l == module).unwrap();
            let found = gen_lines[start..]
                .iter()
                .take_while(|l| **l != "}")
                .any(|l| l.trim() == want || l.contains(&alloc::format!("const {konst}:")));
            assert!(found, "{current}: {want}");
            checked += 1;
        }
        assert!(structs > 80, "{structs}");
        assert!(checked > 1000, "{checked}");
        // Spot checks against docs/mlx5.md.
        assert_eq!(ifc::create_sq_in::CTX_RLKY, Field::new(0x20, 31, 31));
        assert_eq!(
            ifc::wq::LOG_WQ_SZ.at(ifc::create_sq_in::CTX_WQ.off),
            Field::new(0x70, 4, 0)
        );
        assert_eq!(ifc::set_fte_in::FLOW_CONTEXT_DESTINATION.off, 0x340);
        assert_eq!(
            ifc::query_special_contexts_out::RESD_LKEY,
            Field::new(0xc, 31, 0)
        );
    }
}
