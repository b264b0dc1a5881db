//! Small safe wrappers over the Linux calls the backends share: owned file descriptors,
//! interface lookups by name, mappings, and `errno` as `std::io::Error`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The last `errno` as an error, prefixed with what was being done.
pub(crate) fn last_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The raw `errno` of the last failed call.
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Turns a returned file descriptor into an [`OwnedFd`], or the `errno` into an error.
pub(crate) fn fd_or_err(fd: libc::c_int, what: &str) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(last_err(what));
    }
    // SAFETY: `fd` was just returned by a successful system call and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `0` or an error from a system call's return value.
pub(crate) fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret < 0 { Err(last_err(what)) } else { Ok(()) }
}

/// `struct ifreq` with the union as raw bytes (the kernel's layout: 16 + 24 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct IfReq {
    pub name: [u8; libc::IFNAMSIZ],
    pub data: [u8; 24],
}

impl IfReq {
    /// An `ifreq` naming `ifname`; an empty, too long or NUL-containing name is an error.
    pub(crate) fn new(ifname: &str) -> io::Result<IfReq> {
        let bytes = ifname.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {ifname:?}"),
            ));
        }
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        r.name[..bytes.len()].copy_from_slice(bytes);
        Ok(r)
    }

    /// The union's first `i32` (ifindex, flags as `short`, mtu).
    pub(crate) fn int(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }

    /// The union's first `short` (`ifr_flags`).
    pub(crate) fn short(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }

    pub(crate) fn set_short(&mut self, v: i16) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }

    /// The name the kernel wrote back (TUNSETIFF may choose one).
    pub(crate) fn name_str(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// `ioctl(fd, req, &mut ifreq)`.
pub(crate) fn ifreq_ioctl(
    fd: RawFd,
    req: libc::c_ulong,
    ifr: &mut IfReq,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `ifr` is a valid, writable `struct ifreq` (40 bytes) for the whole call; the
    // interface ioctls used here read and write only within it.
    let r = unsafe { libc::ioctl(fd, req as _, ifr as *mut IfReq) };
    check(r, what)
}

/// A datagram socket for interface ioctls.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    fd_or_err(fd, "socket(AF_INET)")
}

/// The interface's index (`SIOCGIFINDEX`).
pub(crate) fn ifindex(ifname: &str) -> io::Result<u32> {
    let s = ioctl_socket()?;
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(
        s.as_raw_fd(),
        libc::SIOCGIFINDEX,
        &mut ifr,
        &format!("interface {ifname}"),
    )?;
    Ok(ifr.int() as u32)
}

/// The interface's MAC address (`SIOCGIFHWADDR`); zeros if it has none.
pub(crate) fn hwaddr(ifname: &str) -> io::Result<[u8; 6]> {
    let s = ioctl_socket()?;
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(
        s.as_raw_fd(),
        libc::SIOCGIFHWADDR,
        &mut ifr,
        "SIOCGIFHWADDR",
    )?;
    // `struct sockaddr`: family (2 bytes), then the address.
    let mut mac = [0; 6];
    mac.copy_from_slice(&ifr.data[2..8]);
    Ok(mac)
}

/// The interface's MTU (`SIOCGIFMTU`).
pub(crate) fn mtu(ifname: &str) -> io::Result<u32> {
    let s = ioctl_socket()?;
    let mut ifr = IfReq::new(ifname)?;
    ifreq_ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr, "SIOCGIFMTU")?;
    Ok(ifr.int().max(0) as u32)
}

/// Whether the interface is up with a carrier (`IFF_UP` and `IFF_RUNNING`).
pub(crate) fn link_running(ifname: &str) -> bool {
    let Ok(s) = ioctl_socket() else {
        return false;
    };
    let Ok(mut ifr) = IfReq::new(ifname) else {
        return false;
    };
    if ifreq_ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS").is_err() {
        return false;
    }
    let flags = ifr.short() as i32;
    flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
}

/// `setsockopt` with a plain-old-data value.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` points to `size_of::<T>()` readable bytes for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(r, what)
}

/// `getsockopt` into a plain-old-data value; returns the length the kernel wrote.
///
/// # Safety
///
/// `T` must be valid for any bit pattern (the kernel writes raw bytes into it).
pub(crate) unsafe fn getsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &mut T,
    what: &str,
) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to `len` writable bytes; the caller guarantees any bytes form a
    // valid `T`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            value as *mut T as *mut libc::c_void,
            &mut len,
        )
    };
    check(r, what)?;
    Ok(len as usize)
}

/// A shared mapping of a socket's ring (or any fd), unmapped on drop.
pub(crate) struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    /// `mmap(NULL, len, READ|WRITE, MAP_SHARED | MAP_POPULATE, fd, offset)`.
    pub(crate) fn new(fd: RawFd, len: usize, offset: libc::off_t, what: &str) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the socket's ring at an address of the kernel's
        // choosing; no existing memory is affected. The result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_err(what));
        }
        Ok(Mapping {
            ptr: p as *mut u8,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly one mapping made in `new`, unmapped only here.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}
