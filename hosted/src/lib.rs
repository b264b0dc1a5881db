//! Host (Linux) platform pieces for the hosted runner: NIC backends and host memory.
