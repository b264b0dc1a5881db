//! The multi-core appliance on the machine (`datapath.cores=N`, see
//! [`appliance::multicore`]): the boot CPU runs the management plane; N application
//! processors each poll queue pair i of every data port with their own packet pool.
//!
//! Bring-up, on the boot CPU: every data virtio-net is set up with N queue pairs
//! (`VirtioNetPort::unstarted_from_pci`, the device gives at most its `max_virtqueue_pairs`),
//! its rings empty; the management core's bridge gets a [`RemoteNic`] per data port; then
//! each AP is handed (`smp::run_on`) its worker, its queue of each port and its queues to and
//! from the management core. On the AP, [`worker_main`] makes the core's packet pool (a
//! `PacketPool` is not `Send`: it is made where it is used), starts its queues with it (posts
//! the receive buffers) and runs the [`WorkerLoop`] forever.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use appliance::multicore::{self as mc, NoQueue, RemoteNic, Shared, WorkerLoop, WorkerStart};
use drivers::dma::PacketPool;
use drivers::nic::Nic;
use drivers::pci::PciFunction;
use drivers::virtio_net::{UnstartedPciQueue, VirtioNetOptions, VirtioNetPort};
use mgmt::cmdline::BootSettings;

use crate::{KernelPlatform, dma, smp};

/// Buffers of one datapath core: its receive ring (256) and transmit ring (256) of every
/// data port, plus bursts in flight.
const BUFS_PER_PORT: usize = 576;
const BUFS_EXTRA: usize = 256;

/// How many datapath cores to run: `datapath.cores=N` capped to the APs online; `None` for
/// the single loop on the boot CPU (N = 0, one CPU, or mlx5 ports, which are not per core yet).
pub fn plan(settings: &BootSettings, functions: &[PciFunction]) -> Option<usize> {
    let want = usize::from(settings.datapath_cores);
    if want == 0 {
        return None;
    }
    let aps = smp::online().filter(|c| *c != 0).count();
    if aps == 0 {
        log::warn!(
            "datapath.cores={want}: only the boot CPU is online; one loop on it forwards and manages"
        );
        return None;
    }
    if functions.iter().any(|f| drivers::mlx5::probe(f).is_some()) {
        log::warn!(
            "datapath.cores={want}: mlx5 ports are not polled per core yet; one loop on the \
             boot CPU forwards and manages"
        );
        return None;
    }
    let n = want.min(aps);
    if n < want {
        log::warn!(
            "datapath.cores={want}: {aps} application processors online, {n} datapath cores"
        );
    }
    Some(n)
}

/// What one AP gets.
struct ApWork {
    start: WorkerStart,
    /// This core's queue pair of every data port (None: the device has fewer pairs).
    queues: Vec<Option<UnstartedPciQueue>>,
    bufs: usize,
}

// The work must be movable to another CPU.
const _: () = {
    const fn send<T: Send>() {}
    send::<WorkerStart>();
    send::<UnstartedPciQueue>();
};

/// Brings up the NICs for `n` datapath cores, builds the management core's switch and starts
/// the workers on the APs.
pub fn start<D: mgmt::store::BlockDevice + 'static>(
    platform: &KernelPlatform,
    settings: &BootSettings,
    functions: &[PciFunction],
    n: usize,
    disk: Option<D>,
) -> appliance::Appliance {
    let _ = drivers::dma::set_dma_allocator(&dma::KERNEL_DMA);
    let (nics, mgmt) = crate::virtio_nics(settings, functions);
    // The management core's pool: the management NIC's rings and the frames it sends.
    let bsp_bufs = BUFS_PER_PORT + BUFS_EXTRA;
    let pool = match PacketPool::new(bsp_bufs) {
        Ok(p) => p,
        Err(e) => panic!("cannot allocate the packet pool ({bsp_bufs} buffers): {e:?}"),
    };
    // SAFETY: PCI configuration access is used from this single boot thread only.
    let mut root = drivers::pci::PciRoot::new(unsafe { drivers::pci::PortIoCam::new() });
    let mut mgmt_nic: Option<Box<dyn Nic>> = None;
    let mut ports: Vec<(String, [u8; 6], bool)> = Vec::new();
    let mut per_core: Vec<Vec<Option<UnstartedPciQueue>>> = (0..n).map(|_| Vec::new()).collect();
    for (i, f) in nics.iter().enumerate() {
        if Some(i) == mgmt {
            match VirtioNetPort::from_pci(&mut root, f.addr, pool.clone()) {
                Ok(mut p) => {
                    // SAFETY: `cam` only reads this function's configuration space.
                    unsafe {
                        let cam = drivers::pci::PortIoCam::new();
                        p.use_direct_notify(&cam, f.addr);
                    }
                    log::info!("mgmt: {} is the management NIC (not a bridge port)", f.addr);
                    mgmt_nic = Some(Box::new(p));
                }
                Err(e) => log::error!("virtio-net {}: cannot bring up: {e:?}", f.addr),
            }
            continue;
        }
        let options = VirtioNetOptions {
            queue_pairs: n as u16,
            ..VirtioNetOptions::default()
        };
        match VirtioNetPort::unstarted_from_pci(&mut root, f.addr, &dma::KERNEL_DMA, options) {
            Ok(queues) => {
                let Some(first) = queues.first() else {
                    log::error!("virtio-net {}: no queue pair", f.addr);
                    continue;
                };
                let probe = first.probe();
                let pairs = queues.len();
                if pairs < n {
                    log::warn!(
                        "{}: {pairs} queue pairs for {n} datapath cores: cores {pairs}.. do not \
                         poll it (give the device mq=on with queues={n})",
                        probe.name()
                    );
                }
                ports.push((
                    String::from(probe.name()),
                    probe.mac_address(),
                    probe.link_up(),
                ));
                let mut queues: Vec<Option<UnstartedPciQueue>> =
                    queues.into_iter().map(Some).collect();
                for (core, slots) in per_core.iter_mut().enumerate() {
                    let mut q = queues.get_mut(core).and_then(Option::take);
                    if let Some(q) = q.as_mut() {
                        // SAFETY: `cam` only reads this function's configuration space.
                        unsafe {
                            let cam = drivers::pci::PortIoCam::new();
                            q.use_direct_notify(&cam, f.addr);
                        }
                    }
                    slots.push(q);
                }
            }
            Err(e) => log::error!("virtio-net {}: cannot bring up: {e:?}", f.addr),
        }
    }
    let shared = Shared::new(ports.len(), n);
    let links = mc::links(n);
    let remote: Vec<Box<dyn Nic>> = ports
        .into_iter()
        .enumerate()
        .map(|(i, (name, mac, up))| {
            shared.set_link(i, up);
            Box::new(RemoteNic::new(
                i as u16,
                name,
                mac,
                shared.clone(),
                links.0.frames.clone(),
            )) as Box<dyn Nic>
        })
        .collect();
    let bufs = remote.len() * BUFS_PER_PORT + BUFS_EXTRA;
    let (switch, starts) = appliance::Appliance::new_multicore(
        platform, settings, pool, remote, mgmt_nic, disk, shared, links,
    );
    let cpus: Vec<usize> = smp::online().filter(|c| *c != 0).take(n).collect();
    for ((start, queues), cpu) in starts.into_iter().zip(per_core).zip(cpus) {
        let id = start.worker.id();
        let work = Box::into_raw(Box::new(ApWork {
            start,
            queues,
            bufs,
        }));
        if let Err(e) = smp::run_on(cpu, worker_main, work as usize) {
            // A worker that never runs would hold every barrier: stop here, loudly.
            panic!("datapath: cannot start worker {id} on cpu {cpu}: {e:?}");
        }
    }
    log::info!("datapath: {n} cores (cpus 1..={n}), management on cpu 0, {bufs} buffers per core");
    switch
}

/// A datapath core's life, on its AP.
fn worker_main(cpu: usize, arg: usize) -> ! {
    // SAFETY: `arg` is `start`'s `Box::into_raw`, handed to this CPU alone, once.
    let work = unsafe { Box::from_raw(arg as *mut ApWork) };
    let ApWork {
        start,
        queues,
        bufs,
    } = *work;
    let id = start.worker.id();
    let pool = match PacketPool::new(bufs) {
        Ok(p) => p,
        Err(e) => {
            panic!("datapath worker {id} (cpu {cpu}): no packet pool ({bufs} buffers): {e:?}")
        }
    };
    let nics: Vec<Box<dyn Nic>> = queues
        .into_iter()
        .map(|q| -> Box<dyn Nic> {
            match q.map(|q| q.start(pool.clone())) {
                Some(Ok(q)) => Box::new(q),
                Some(Err(e)) => {
                    log::error!("datapath worker {id}: cannot start a queue: {e:?}");
                    Box::new(NoQueue)
                }
                None => Box::new(NoQueue),
            }
        })
        .collect();
    log::info!(
        "datapath: worker {id} polling {} queues on cpu {cpu}",
        nics.iter().filter(|n| n.num_rx_queues() > 0).count()
    );
    let mut w = WorkerLoop::new(start, pool, nics);
    w.run(crate::time::now_ms)
}
