//! The appliance's main loop, shared by the kernel image and the hosted runner.
#![no_std]

extern crate alloc;
