//! HCA bring-up (docs/mlx5.md §4.1, in Linux's order so the golden test can compare against the
//! real-hardware trace): initializing wait, command queue, ENABLE_HCA, ISSI, boot pages, host
//! endianness, capabilities, SET_HCA_CAP, init pages, INIT_HCA, UAR, the async EQ, then the
//! regular pages, PD, transport domain and reserved lkey. Page requests are answered here at
//! any time, including reclaims. [`Hca`]'s drop tears the HCA down.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use log::{info, warn};

use super::cmd::{self, CmdError, CmdQueue};
use super::health::{self, HealthMonitor};
use super::layouts::ifc::*;
use super::layouts::{Field, eqe, init_seg, op, reg, uar};
use super::queues::{Event, parse_eqe};
use super::{DmaMem, Mlx5Error, Mlx5Hw};
use crate::dma::PAGE_SIZE;

/// QUERY_HCA_CAP op_mod: (cap_type << 1) | current.
pub const CAP_GENERAL_MAX: u16 = 0;
pub const CAP_GENERAL_CUR: u16 = 1;
pub const CAP_ETH_CUR: u16 = (1 << 1) | 1;
pub const CAP_FLOW_TABLE_CUR: u16 = (7 << 1) | 1;
/// QUERY_PAGES / MANAGE_PAGES op_mods.
pub const PAGES_BOOT: u16 = 1;
pub const PAGES_INIT: u16 = 2;
pub const PAGES_REGULAR: u16 = 3;
const MANAGE_GIVE: u16 = 1;
const MANAGE_TAKE: u16 = 2;
/// Largest page request answered in one go (512 MiB of pages; a ConnectX-4 asks ~12.9 k
/// pages at init); more is a device bug.
pub const MAX_PAGE_REQUEST: u32 = 1 << 17;
/// Most pages the device may hold at once (1 GiB): a firmware that keeps asking is refused
/// rather than allowed to take the appliance's memory (found by the `mlx5_device_data` fuzz
/// target: repeated requests just under the per-request limit ran the host out of memory).
pub const MAX_PAGES_HELD: usize = 1 << 18;
/// The async EQ: 256 entries of 64 bytes, 16 KiB in one PAS entry (as Linux's first EQ).
pub const EQ_LOG_SIZE: u8 = 8;
/// Events on the async EQ: CQ error, WQ catastrophic, internal error, port change, page
/// request.
pub const EQ_EVENTS: u64 = (1 << eqe::TYPE_CQ_ERROR)
    | (1 << eqe::TYPE_WQ_CATAS)
    | (1 << eqe::TYPE_INTERNAL_ERROR)
    | (1 << eqe::TYPE_PORT_CHANGE)
    | (1 << eqe::TYPE_PAGE_REQUEST);

/// Capabilities the driver uses (general, Ethernet and flow-table, current values).
#[derive(Clone, Debug, Default)]
pub struct Caps {
    /// The general capability block as queried after INIT_HCA (0x100 bytes).
    pub general: Vec<u8>,
    pub port_type: u32,
    pub num_ports: u32,
    pub log_max_cq_sz: u32,
    pub log_max_wq_sz: u32,
    pub log_max_eq_sz: u32,
    pub uar_sz: u32,
    pub log_bf_reg_size: u32,
    pub nic_flow_table: bool,
    /// Ethernet cap wqe_inline_mode: 0 L2 required, 1 per vport, 2 none.
    pub wqe_inline_mode: u32,
}

impl Caps {
    fn parse(general: &[u8], eth: &[u8]) -> Caps {
        Caps {
            general: general.to_vec(),
            port_type: cmd_hca_cap::PORT_TYPE.get(general),
            num_ports: cmd_hca_cap::NUM_PORTS.get(general),
            log_max_cq_sz: cmd_hca_cap::LOG_MAX_CQ_SZ.get(general),
            log_max_wq_sz: cmd_hca_cap::LOG_MAX_WQ_SZ.get(general),
            log_max_eq_sz: cmd_hca_cap::LOG_MAX_EQ_SZ.get(general),
            uar_sz: cmd_hca_cap::UAR_SZ.get(general),
            log_bf_reg_size: cmd_hca_cap::LOG_BF_REG_SIZE.get(general),
            nic_flow_table: cmd_hca_cap::NIC_FLOW_TABLE.get(general) != 0,
            wqe_inline_mode: per_protocol_networking_offload_caps::WQE_INLINE_MODE.get(eth),
        }
    }
}

/// The event queue the driver polls for asynchronous events.
pub struct Eq {
    pub mem: DmaMem,
    pub log_size: u8,
    pub ci: u32,
    pub eqn: u32,
}

/// Counters of the page traffic with the firmware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStats {
    pub boot: i32,
    pub init: i32,
    pub given: u64,
    pub reclaimed: u64,
    /// Pages the firmware returned that the driver never gave (ignored).
    pub unknown_returned: u64,
    pub requests: u64,
}

/// One initialized HCA: command queue, firmware pages, UAR, async EQ, PD, TD, reserved lkey.
pub struct Hca<H: Mlx5Hw> {
    pub hw: H,
    pub cmd: CmdQueue,
    pub pages: BTreeMap<u64, DmaMem>,
    pub page_stats: PageStats,
    pub caps: Caps,
    pub health: HealthMonitor,
    pub fw_version: (u16, u16, u16),
    pub uar: u32,
    pub eq: Option<Eq>,
    pub pd: u32,
    pub td: u32,
    pub resd_lkey: u32,
    enabled: bool,
    initialized: bool,
    torn_down: bool,
}

/// Waits for `initializing` (init segment 0x1fc bit 31) to clear.
fn wait_initializing<H: Mlx5Hw>(hw: &mut H, timeout_us: u64) -> Result<(), Mlx5Error> {
    let mut waited = 0u64;
    loop {
        let v = hw.read32(init_seg::INITIALIZING);
        if v == u32::MAX && hw.read32(init_seg::FW_REV) == u32::MAX {
            return Err(Mlx5Error::Health(health::HealthError::DeviceGone));
        }
        if v & init_seg::INITIALIZING_BIT == 0 {
            return Ok(());
        }
        if waited >= timeout_us {
            return Err(Mlx5Error::InitTimeout);
        }
        hw.delay_us(100);
        waited += 100;
    }
}

/// Physical page list of a ring: one entry with a larger `log_page_size` when the ring is a
/// power-of-two number of pages (contiguous), else every 4 KiB page.
pub fn pas_of(mem: &DmaMem, bytes: usize) -> (u32, Vec<u64>) {
    let pages = bytes.div_ceil(PAGE_SIZE).max(1);
    if pages.is_power_of_two() {
        (pages.trailing_zeros(), alloc::vec![mem.phys()])
    } else {
        (
            0,
            (0..pages)
                .map(|i| mem.phys() + (i * PAGE_SIZE) as u64)
                .collect(),
        )
    }
}

/// Writes `pas` as BE64 entries from byte `off` of `input`.
pub fn put_pas(input: &mut [u8], off: usize, pas: &[u64]) {
    for (i, pa) in pas.iter().enumerate() {
        super::layouts::write_be64(input, off + 8 * i, *pa);
    }
}

/// Settings of [`Hca::bring_up`].
#[derive(Clone, Copy, Debug)]
pub struct HcaConfig {
    /// Longest wait for one command (INIT_HCA can take seconds on hardware).
    pub cmd_timeout_us: u64,
    /// Longest wait for `initializing` to clear.
    pub init_timeout_us: u64,
}

impl Default for HcaConfig {
    fn default() -> Self {
        HcaConfig {
            cmd_timeout_us: 60_000_000,
            init_timeout_us: 10_000_000,
        }
    }
}

impl<H: Mlx5Hw> Hca<H> {
    /// Brings the HCA up to the point where queues can be created. On failure the HCA is torn
    /// down as far as it got, and its memory is freed.
    pub fn bring_up(mut hw: H, config: HcaConfig) -> Result<Hca<H>, Mlx5Error> {
        let fw = hw.read32(init_seg::FW_REV);
        let sub = hw.read32(init_seg::CMDIF_REV_FW_SUB);
        if fw == u32::MAX && sub == u32::MAX {
            return Err(Mlx5Error::Health(health::HealthError::DeviceGone));
        }
        let fw_version = (fw as u16, (fw >> 16) as u16, sub as u16);
        wait_initializing(&mut hw, config.init_timeout_us)?;
        let cmd = CmdQueue::new(&mut hw, config.cmd_timeout_us)?;
        let mut hca = Hca {
            hw,
            cmd,
            pages: BTreeMap::new(),
            page_stats: PageStats::default(),
            caps: Caps::default(),
            health: HealthMonitor::default(),
            fw_version,
            uar: 0,
            eq: None,
            pd: 0,
            td: 0,
            resd_lkey: 0,
            enabled: false,
            initialized: false,
            torn_down: false,
        };
        wait_initializing(&mut hca.hw, config.init_timeout_us)?;
        hca.init_sequence()?;
        info!(
            "mlx5: fw {}.{}.{}, {} boot + {} init pages, uar {:#x}, eq {:#x}, pd {:#x}, lkey {:#x}",
            hca.fw_version.0,
            hca.fw_version.1,
            hca.fw_version.2,
            hca.page_stats.boot,
            hca.page_stats.init,
            hca.uar,
            hca.eq.as_ref().map_or(0, |e| e.eqn),
            hca.pd,
            hca.resd_lkey
        );
        Ok(hca)
    }

    /// Runs a command, recording a fatal health condition it ran into.
    pub fn exec(&mut self, input: &[u8], out_len: usize) -> Result<Vec<u8>, CmdError> {
        if let Some(h) = self.health.failure() {
            return Err(CmdError::Health(h));
        }
        let result = self.cmd.exec(&mut self.hw, input, out_len);
        if let Err(CmdError::Health(h)) = result {
            self.health.set_failed(h);
        }
        result
    }

    fn simple(&mut self, opcode: u16, op_mod: u16) -> Result<Vec<u8>, CmdError> {
        self.exec(&cmd::input(opcode, op_mod, 0x10), 0x10)
    }

    fn init_sequence(&mut self) -> Result<(), Mlx5Error> {
        self.simple(op::ENABLE_HCA, 0)?;
        self.enabled = true;

        let issi = self.exec(&cmd::input(op::QUERY_ISSI, 0, 0x10), query_issi_out::SIZE)?;
        if query_issi_out::SUPPORTED_ISSI_DW0.get(&issi) & 2 == 0 {
            return Err(Mlx5Error::Unsupported("ISSI 1"));
        }
        let mut set_issi = cmd::input(op::SET_ISSI, 0, set_issi_in::SIZE);
        set_issi_in::CURRENT_ISSI.set(&mut set_issi, 1);
        self.exec(&set_issi, 0x10)?;

        self.page_stats.boot = self.satisfy_pages(PAGES_BOOT)?;

        // HOST_ENDIANNESS: 0 = little-endian host (x86).
        let mut he = cmd::input(op::ACCESS_REG, 0, 0x20);
        access_register_in::REGISTER_ID.set(&mut he, u32::from(reg::HOST_ENDIANNESS));
        self.exec(&he, 0x20)?;

        self.query_cap(CAP_GENERAL_MAX)?;
        let current = self.query_cap(CAP_GENERAL_CUR)?;
        // SET_HCA_CAP: the current general caps with command checksums off.
        let mut set = cmd::input(op::SET_HCA_CAP, 0, set_hca_cap_in::SIZE);
        let cap_off = set_hca_cap_in::CAPABILITY.off;
        let n = current.len().min(set.len() - cap_off);
        set[cap_off..cap_off + n].copy_from_slice(&current[..n]);
        cmd_hca_cap::CMDIF_CHECKSUM.at(cap_off).set(&mut set, 0);
        self.exec(&set, 0x10)?;

        self.page_stats.init = self.satisfy_pages(PAGES_INIT)?;
        self.simple(op::INIT_HCA, 0)?;
        self.initialized = true;

        let general = self.query_cap(CAP_GENERAL_CUR)?;
        let eth = self.query_cap(CAP_ETH_CUR)?;
        self.caps = Caps::parse(&general, &eth);
        if self.caps.port_type != 1 {
            return Err(Mlx5Error::Unsupported("Ethernet port type"));
        }
        if self.caps.nic_flow_table {
            self.query_cap(CAP_FLOW_TABLE_CUR)?;
        }

        let out = self.simple(op::ALLOC_UAR, 0)?;
        self.uar = alloc_uar_out::UAR.get(&out);
        if (self.uar as usize + 1) * uar::PAGE > self.hw.bar_size() {
            return Err(Mlx5Error::BadDeviceValue("UAR index"));
        }
        self.create_eq()?;

        // Beyond Linux's trace: pages for regular operation now (Snabb, Theseus), page
        // requests later.
        self.satisfy_pages(PAGES_REGULAR)?;
        let out = self.simple(op::ALLOC_PD, 0)?;
        self.pd = alloc_pd_out::PD.get(&out);
        let out = self.simple(op::ALLOC_TRANSPORT_DOMAIN, 0)?;
        self.td = alloc_transport_domain_out::TRANSPORT_DOMAIN.get(&out);
        let out = self.exec(
            &cmd::input(op::QUERY_SPECIAL_CONTEXTS, 0, 0x10),
            query_special_contexts_out::SIZE,
        )?;
        self.resd_lkey = query_special_contexts_out::RESD_LKEY.get(&out);
        Ok(())
    }

    /// The capability block (0x1000 bytes) of one QUERY_HCA_CAP.
    pub fn query_cap(&mut self, op_mod: u16) -> Result<Vec<u8>, CmdError> {
        let out = self.exec(
            &cmd::input(op::QUERY_HCA_CAP, op_mod, 0x10),
            query_hca_cap_out::SIZE,
        )?;
        let cap = query_hca_cap_out::CAPABILITY;
        Ok(out[cap.off..cap.off + cap.len].to_vec())
    }

    /// QUERY_PAGES(op_mod), then gives (or takes back) what the firmware asks for. Returns
    /// the count it asked for.
    pub fn satisfy_pages(&mut self, op_mod: u16) -> Result<i32, Mlx5Error> {
        let out = self.simple(op::QUERY_PAGES, op_mod)?;
        let count = query_pages_out::NUM_PAGES.get(&out) as i32;
        let func = query_pages_out::FUNCTION_ID.get(&out) as u16;
        self.answer_pages(func, count)?;
        Ok(count)
    }

    /// Gives `count` pages (negative: takes `-count` back) for function `func`.
    pub fn answer_pages(&mut self, func: u16, count: i32) -> Result<(), Mlx5Error> {
        if count > 0 {
            self.give_pages(func, count as u32)
        } else if count < 0 {
            self.reclaim_pages(func, count.unsigned_abs())
        } else {
            Ok(())
        }
    }

    fn give_pages(&mut self, func: u16, count: u32) -> Result<(), Mlx5Error> {
        if count > MAX_PAGE_REQUEST || self.pages.len() + count as usize > MAX_PAGES_HELD {
            warn!(
                "mlx5: firmware asks for {count} pages (holding {}); refusing more than {MAX_PAGE_REQUEST} at once or {MAX_PAGES_HELD} in all",
                self.pages.len()
            );
            return Err(Mlx5Error::BadDeviceValue("page count"));
        }
        let mut fresh = Vec::with_capacity(count as usize);
        for _ in 0..count {
            match DmaMem::alloc(self.hw.allocator(), PAGE_SIZE) {
                Some(page) => fresh.push(page),
                None => {
                    // Tell the firmware we cannot (op_mod 0, no entries).
                    let mut nack = cmd::input(op::MANAGE_PAGES, 0, manage_pages_in::SIZE);
                    manage_pages_in::FUNCTION_ID.set(&mut nack, u32::from(func));
                    let _ = self.exec(&nack, 0x10);
                    return Err(Mlx5Error::OutOfDmaMemory);
                }
            }
        }
        let pas_off = manage_pages_in::PAS.off;
        let mut input = cmd::input(op::MANAGE_PAGES, MANAGE_GIVE, pas_off + 8 * fresh.len());
        manage_pages_in::FUNCTION_ID.set(&mut input, u32::from(func));
        manage_pages_in::INPUT_NUM_ENTRIES.set(&mut input, count);
        let phys: Vec<u64> = fresh.iter().map(|p| p.phys()).collect();
        put_pas(&mut input, pas_off, &phys);
        self.exec(&input, manage_pages_out::SIZE)?;
        for page in fresh {
            self.pages.insert(page.phys(), page);
        }
        self.page_stats.given += u64::from(count);
        Ok(())
    }

    fn reclaim_pages(&mut self, func: u16, count: u32) -> Result<(), Mlx5Error> {
        let count = count.min(self.pages.len() as u32);
        let mut input = cmd::input(op::MANAGE_PAGES, MANAGE_TAKE, manage_pages_in::SIZE);
        manage_pages_in::FUNCTION_ID.set(&mut input, u32::from(func));
        manage_pages_in::INPUT_NUM_ENTRIES.set(&mut input, count);
        let pas_off = manage_pages_out::PAS.off;
        let out = self.exec(&input, pas_off + 8 * count as usize)?;
        let returned = manage_pages_out::OUTPUT_NUM_ENTRIES.get(&out).min(count);
        for i in 0..returned as usize {
            let pa = super::layouts::read_be64(&out, pas_off + 8 * i);
            if self.pages.remove(&pa).is_some() {
                self.page_stats.reclaimed += 1;
            } else {
                self.page_stats.unknown_returned += 1;
                warn!("mlx5: firmware returned page {pa:#x} it was never given");
            }
        }
        Ok(())
    }

    fn create_eq(&mut self) -> Result<(), Mlx5Error> {
        let bytes = (1usize << EQ_LOG_SIZE) * eqe::SIZE;
        let mem = DmaMem::alloc(self.hw.allocator(), bytes).ok_or(Mlx5Error::OutOfDmaMemory)?;
        for i in 0..1usize << EQ_LOG_SIZE {
            mem.write8(i * eqe::SIZE + eqe::OWNER, 1);
        }
        let (log_page, pas) = pas_of(&mem, bytes);
        let mut input = cmd::input(op::CREATE_EQ, 0, create_eq_in::PAS.off + 8 * pas.len());
        create_eq_in::EQ_CONTEXT_ENTRY_LOG_EQ_SIZE.set(&mut input, u32::from(EQ_LOG_SIZE));
        create_eq_in::EQ_CONTEXT_ENTRY_UAR_PAGE.set(&mut input, self.uar);
        create_eq_in::EQ_CONTEXT_ENTRY_LOG_PAGE_SIZE.set(&mut input, log_page);
        create_eq_in::EVENT_BITMASK.set_u64(&mut input, EQ_EVENTS);
        put_pas(&mut input, create_eq_in::PAS.off, &pas);
        let out = self.exec(&input, create_eq_out::SIZE)?;
        let eqn = create_eq_out::EQ_NUMBER.get(&out);
        self.eq = Some(Eq {
            mem,
            log_size: EQ_LOG_SIZE,
            ci: 0,
            eqn,
        });
        self.eq_doorbell();
        Ok(())
    }

    fn uar_base(&self) -> usize {
        self.uar as usize * uar::PAGE
    }

    fn eq_doorbell(&mut self) {
        if let Some(eq) = &self.eq {
            let value = (eq.eqn << 24) | (eq.ci & 0x00ff_ffff);
            let off = self.uar_base() + uar::EQ_DB_NOARM;
            self.hw.write32(off, value);
        }
    }

    /// Drains the async EQ (bounded), answering page requests. Returns the other events.
    pub fn poll_events(&mut self) -> Result<Vec<Event>, Mlx5Error> {
        let mut events = Vec::new();
        let mut page_requests = Vec::new();
        let Some(eq) = self.eq.as_mut() else {
            return Ok(events);
        };
        let entries = 1u32 << eq.log_size;
        for _ in 0..entries {
            let off = (eq.ci & (entries - 1)) as usize * eqe::SIZE;
            let owner = eq.mem.read8(off + eqe::OWNER);
            if owner & 1 != ((eq.ci >> eq.log_size) & 1) as u8 {
                break;
            }
            fence(Ordering::Acquire);
            let bytes: [u8; eqe::SIZE] = eq.mem.read_array(off);
            let Some(event) = parse_eqe(&bytes, eq.ci, eq.log_size) else {
                break;
            };
            eq.ci = eq.ci.wrapping_add(1);
            match event {
                Event::PageRequest { func_id, pages } => page_requests.push((func_id, pages)),
                other => events.push(other),
            }
        }
        self.eq_doorbell();
        for (func, pages) in page_requests {
            self.page_stats.requests += 1;
            self.answer_pages(func, pages)?;
        }
        Ok(events)
    }

    /// Health poll (stateful: counter stalls count).
    pub fn poll_health(&mut self) -> Result<(), health::HealthError> {
        self.health.poll(&mut self.hw)
    }

    /// Writes a UAR register of this HCA's UAR page.
    #[inline]
    pub fn uar_write64(&mut self, reg_off: usize, value: u64) {
        let off = self.uar_base() + reg_off;
        self.hw.write64(off, value);
    }

    /// TEARDOWN_HCA then DISABLE_HCA (skipped when the device is known dead). Idempotent.
    pub fn shutdown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if self.health.failure().is_some() || self.cmd.is_stuck() {
            return;
        }
        if self.initialized {
            let mut input = cmd::input(op::TEARDOWN_HCA, 0, teardown_hca_in::SIZE);
            teardown_hca_in::PROFILE.set(&mut input, 0);
            if let Err(e) = self.exec(&input, 0x10) {
                warn!("mlx5: TEARDOWN_HCA: {e}");
            }
        }
        if self.enabled
            && let Err(e) = self.simple(op::DISABLE_HCA, 0)
        {
            warn!("mlx5: DISABLE_HCA: {e}");
        }
    }

    /// One field of the current general capabilities.
    pub fn cap(&self, field: Field) -> u32 {
        field.get(&self.caps.general)
    }
}

impl<H: Mlx5Hw> Drop for Hca<H> {
    fn drop(&mut self) {
        // The device must stop using our memory (pages, queues) before it is freed.
        self.shutdown();
    }
}
