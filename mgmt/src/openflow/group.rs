//! Groups: `GROUP_MOD`, buckets, and the group multipart bodies, in the 1.1-1.4 layout and in
//! OpenFlow 1.5's (bucket ids, bucket properties for weight and watch port/group). The 1.5
//! INSERT_BUCKET/REMOVE_BUCKET commands are refused with `GROUP_MOD_FAILED/BAD_COMMAND`.

use alloc::vec::Vec;

use super::OFP15;
use super::action::{Action, emit_actions, parse_actions};
use super::bytes::{Put, Reader};
use super::error::OfpError;

pub const OFPG_MAX: u32 = 0xffff_ff00;
pub const OFPG_ALL: u32 = 0xffff_fffc;
pub const OFPG_ANY: u32 = 0xffff_ffff;

pub const OFPGT_ALL: u8 = 0;
pub const OFPGT_SELECT: u8 = 1;
pub const OFPGT_INDIRECT: u8 = 2;
pub const OFPGT_FF: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupCommand {
    Add,
    Modify,
    Delete,
}

/// A bucket of a group (`ofp_bucket`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub weight: u16,
    pub watch_port: u32,
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

impl Bucket {
    fn parse(version: u8, r: &mut Reader<'_>) -> Result<Bucket, OfpError> {
        let e = OfpError::BAD_BUCKET;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 16 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(e);
        }
        let mut b = r.sub(len).ok_or(e)?;
        b.skip(2).ok_or(e)?;
        let weight = b.u16().ok_or(e)?;
        let watch_port = b.u32().ok_or(e)?;
        let watch_group = b.u32().ok_or(e)?;
        b.skip(4).ok_or(e)?;
        Ok(Bucket {
            weight,
            watch_port,
            watch_group,
            actions: parse_actions(version, b.rest())?,
        })
    }

    fn emit(&self, version: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(self.weight);
        out.put_u32(self.watch_port);
        out.put_u32(self.watch_group);
        out.put_u32(0);
        emit_actions(version, &self.actions, out)?;
        let len = (out.len() - start) as u16;
        out.set_u16(start, len);
        Ok(())
    }
}

impl Bucket {
    /// OpenFlow 1.5 `ofp_bucket`: len, action_array_len, bucket_id, actions, properties.
    fn parse15(r: &mut Reader<'_>, group_type: u8) -> Result<Bucket, OfpError> {
        let e = OfpError::BAD_BUCKET;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(e);
        }
        let mut b = r.sub(len).ok_or(e)?;
        b.skip(2).ok_or(e)?;
        let alen = b.u16().ok_or(e)? as usize;
        b.skip(4).ok_or(e)?; // bucket_id: ids are the buckets' positions here
        let actions = parse_actions(OFP15, b.bytes(alen).ok_or(e)?)?;
        let mut bucket = Bucket {
            weight: if group_type == OFPGT_SELECT { 1 } else { 0 },
            watch_port: super::port::OFPP_ANY,
            watch_group: OFPG_ANY,
            actions,
        };
        while !b.is_empty() {
            let ptype = b.u16().ok_or(e)?;
            let plen = b.u16().ok_or(e)? as usize;
            if plen < 4 {
                return Err(OfpError::BAD_PROPERTY_LEN);
            }
            let mut p = b.sub(plen - 4).ok_or(OfpError::BAD_PROPERTY_LEN)?;
            b.skip((8 - plen % 8) % 8).ok_or(e)?;
            let bad = OfpError::BAD_PROPERTY_LEN;
            match ptype {
                0 => bucket.weight = p.u16().ok_or(bad)?,
                1 => bucket.watch_port = p.u32().ok_or(bad)?,
                2 => bucket.watch_group = p.u32().ok_or(bad)?,
                _ => return Err(OfpError::BAD_PROPERTY_TYPE),
            }
        }
        Ok(bucket)
    }

    fn emit15(&self, id: u32, group_type: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(0);
        out.put_u32(id);
        emit_actions(OFP15, &self.actions, out)?;
        let alen = (out.len() - start - 8) as u16;
        if group_type == OFPGT_SELECT {
            out.put_u16(0);
            out.put_u16(8);
            out.put_u16(self.weight);
            out.put_u16(0);
        }
        if self.watch_port != super::port::OFPP_ANY {
            out.put_u16(1);
            out.put_u16(8);
            out.put_u32(self.watch_port);
        }
        if self.watch_group != OFPG_ANY {
            out.put_u16(2);
            out.put_u16(8);
            out.put_u32(self.watch_group);
        }
        let len = (out.len() - start) as u16;
        out.set_u16(start, len);
        out.set_u16(start + 2, alen);
        Ok(())
    }
}

fn parse_buckets(version: u8, r: &mut Reader<'_>) -> Result<Vec<Bucket>, OfpError> {
    let mut v = Vec::new();
    while !r.is_empty() {
        v.push(Bucket::parse(version, r)?);
    }
    Ok(v)
}

/// 1.5: the bucket array (`len` bytes), then group properties (ignored).
fn parse_buckets15(
    r: &mut Reader<'_>,
    len: usize,
    group_type: u8,
) -> Result<Vec<Bucket>, OfpError> {
    let mut b = r.sub(len).ok_or(OfpError::BAD_BUCKET)?;
    let mut v = Vec::new();
    while !b.is_empty() {
        v.push(Bucket::parse15(&mut b, group_type)?);
    }
    Ok(v)
}

fn emit_buckets15(buckets: &[Bucket], group_type: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
    for (i, b) in buckets.iter().enumerate() {
        b.emit15(i as u32, group_type, out)?;
    }
    Ok(())
}

/// `GROUP_MOD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMod {
    pub command: GroupCommand,
    pub group_type: u8,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub fn parse(version: u8, r: &mut Reader<'_>) -> Result<GroupMod, OfpError> {
        let e = OfpError::BAD_LEN;
        let command = match r.u16().ok_or(e)? {
            0 => GroupCommand::Add,
            1 => GroupCommand::Modify,
            2 => GroupCommand::Delete,
            _ => return Err(OfpError::GROUP_BAD_COMMAND),
        };
        let group_type = r.u8().ok_or(e)?;
        r.skip(1).ok_or(e)?;
        let group_id = r.u32().ok_or(e)?;
        if group_type > OFPGT_FF && command != GroupCommand::Delete {
            return Err(OfpError::BAD_GROUP_TYPE);
        }
        let id_ok = match command {
            GroupCommand::Delete => group_id <= OFPG_MAX || group_id == OFPG_ALL,
            _ => group_id <= OFPG_MAX,
        };
        if !id_ok {
            return Err(OfpError::INVALID_GROUP);
        }
        let buckets = if version >= OFP15 {
            let blen = r.u16().ok_or(e)? as usize;
            r.skip(6).ok_or(e)?; // pad, command_bucket_id (only for the bucket commands)
            let b = parse_buckets15(r, blen, group_type)?;
            // Group properties (experimenter only in 1.5) are ignored.
            b
        } else {
            parse_buckets(version, r)?
        };
        Ok(GroupMod {
            command,
            group_type,
            group_id,
            buckets,
        })
    }

    pub fn emit(&self, version: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        out.put_u16(match self.command {
            GroupCommand::Add => 0,
            GroupCommand::Modify => 1,
            GroupCommand::Delete => 2,
        });
        out.put_u8(self.group_type);
        out.put_u8(0);
        out.put_u32(self.group_id);
        if version >= OFP15 {
            let at = out.len();
            out.put_u16(0);
            out.put_u16(0);
            out.put_u32(0xffff_ffff); // command_bucket_id = OFPG_BUCKET_ALL
            emit_buckets15(&self.buckets, self.group_type, out)?;
            let blen = (out.len() - at - 8) as u16;
            out.set_u16(at, blen);
            return Ok(());
        }
        for b in &self.buckets {
            b.emit(version, out)?;
        }
        Ok(())
    }
}

/// One entry of a group-description reply (`ofp_group_desc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDesc {
    pub group_type: u8,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupDesc {
    pub fn parse(version: u8, r: &mut Reader<'_>) -> Result<GroupDesc, OfpError> {
        let e = OfpError::BAD_LEN;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 8 {
            return Err(e);
        }
        let mut g = r.sub(len).ok_or(e)?;
        g.skip(2).ok_or(e)?;
        let group_type = g.u8().ok_or(e)?;
        g.skip(1).ok_or(e)?;
        let group_id = g.u32().ok_or(e)?;
        let buckets = if version >= OFP15 {
            let blen = g.u16().ok_or(e)? as usize;
            g.skip(6).ok_or(e)?;
            parse_buckets15(&mut g, blen, group_type)?
        } else {
            parse_buckets(version, &mut g)?
        };
        Ok(GroupDesc {
            group_type,
            group_id,
            buckets,
        })
    }
    pub fn emit(&self, version: u8, out: &mut Vec<u8>) -> Result<(), OfpError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.group_type);
        out.put_u8(0);
        out.put_u32(self.group_id);
        if version >= OFP15 {
            out.put_u16(0);
            out.put_zeros(6);
            emit_buckets15(&self.buckets, self.group_type, out)?;
            let blen = (out.len() - start - 16) as u16;
            out.set_u16(start + 8, blen);
        } else {
            for b in &self.buckets {
                b.emit(version, out)?;
            }
        }
        let len = (out.len() - start) as u16;
        out.set_u16(start, len);
        Ok(())
    }
}

/// One entry of a group-statistics reply (`ofp_group_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// (packet_count, byte_count) per bucket.
    pub buckets: Vec<(u64, u64)>,
}

impl GroupStats {
    pub fn parse(r: &mut Reader<'_>) -> Result<GroupStats, OfpError> {
        let e = OfpError::BAD_LEN;
        let len = r.peek_u16(0).ok_or(e)? as usize;
        if len < 40 || !(len - 40).is_multiple_of(16) {
            return Err(e);
        }
        let mut g = r.sub(len).ok_or(e)?;
        g.skip(4).ok_or(e)?;
        let mut s = GroupStats {
            group_id: g.u32().ok_or(e)?,
            ref_count: g.u32().ok_or(e)?,
            ..Default::default()
        };
        g.skip(4).ok_or(e)?;
        s.packet_count = g.u64().ok_or(e)?;
        s.byte_count = g.u64().ok_or(e)?;
        s.duration_sec = g.u32().ok_or(e)?;
        s.duration_nsec = g.u32().ok_or(e)?;
        while !g.is_empty() {
            s.buckets.push((g.u64().ok_or(e)?, g.u64().ok_or(e)?));
        }
        Ok(s)
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u16((40 + 16 * self.buckets.len()) as u16);
        out.put_u16(0);
        out.put_u32(self.group_id);
        out.put_u32(self.ref_count);
        out.put_u32(0);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        for (p, b) in &self.buckets {
            out.put_u64(*p);
            out.put_u64(*b);
        }
    }
}

/// Group features (`ofp_group_features`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFeatures {
    /// Bitmap of `1 << OFPGT_*` supported.
    pub types: u32,
    /// `OFPGFC_*`: SELECT_WEIGHT 1, SELECT_LIVENESS 2, CHAINING 4, CHAINING_CHECKS 8.
    pub capabilities: u32,
    pub max_groups: [u32; 4],
    /// Bitmap of `1 << OFPAT_*` per group type.
    pub actions: [u32; 4],
}

impl GroupFeatures {
    pub fn parse(r: &mut Reader<'_>) -> Result<GroupFeatures, OfpError> {
        let e = OfpError::BAD_LEN;
        let mut f = GroupFeatures {
            types: r.u32().ok_or(e)?,
            capabilities: r.u32().ok_or(e)?,
            ..Default::default()
        };
        for x in f.max_groups.iter_mut() {
            *x = r.u32().ok_or(e)?;
        }
        for x in f.actions.iter_mut() {
            *x = r.u32().ok_or(e)?;
        }
        Ok(f)
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put_u32(self.types);
        out.put_u32(self.capabilities);
        self.max_groups.iter().for_each(|&x| out.put_u32(x));
        self.actions.iter().for_each(|&x| out.put_u32(x));
    }
}
