//! The first instructions: the Multiboot2 header (GRUB), the PVH ELF note (QEMU `-kernel`,
//! direct-boot VMMs), and one 32→64-bit trampoline for both.
//!
//! Both protocols enter in 32-bit protected mode with paging off. The trampoline reads the TSC
//! (boot time is measured from here), identity-maps 0–4 GiB with 2 MiB pages (kernel, low RAM,
//! the PCI hole with LAPIC/IOAPIC; the firmware's MTRRs keep the hole uncached), enables long mode, and calls `kmain_entry(magic, info)`
//! with the boot protocol's magic and the physical address of its boot information.

/// Magic passed for a PVH boot (the `hvm_start_info` magic).
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Magic a Multiboot2 loader leaves in `eax`.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

/// Size of the boot stack (the main loop runs on it).
pub const BOOT_STACK_SIZE: usize = 512 * 1024;

core::arch::global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header_start:
    .long 0xE85250D6
    .long 0
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header_start))
    /* end tag */
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .note.Xen, "a"
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 8                 /* descriptor size: a 64-bit entry address */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_entry
    .balign 4

    .section .boot.text, "ax"
    .code32
    .global pvh_entry
pvh_entry:
    /* ebx = hvm_start_info */
    mov $0x336ec578, %edi
    mov %ebx, %esi
    jmp 1f

    .global mb2_entry
mb2_entry:
    /* eax = multiboot2 magic, ebx = boot information */
    mov %eax, %edi
    mov %ebx, %esi
1:
    cli
    rdtsc
    mov %eax, (BOOT_TSC)
    mov %edx, (BOOT_TSC + 4)
    mov $boot_stack_top, %esp

    /* PML4[0] -> PDPT; PDPT[0..4] -> 4 page directories; 2048 PDEs of 2 MiB cover 4 GiB. */
    mov $boot_pdpt, %eax
    or $3, %eax
    mov %eax, (boot_pml4)
    movl $0, (boot_pml4 + 4)
    mov $boot_pd, %eax
    or $3, %eax
    xor %ecx, %ecx
2:
    mov %eax, boot_pdpt(,%ecx,8)
    movl $0, boot_pdpt + 4(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 2b

    xor %ecx, %ecx
3:
    mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax          /* present, writable, 2 MiB page (MTRRs make the PCI hole UC) */
    mov %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd + 4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 3b

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax          /* PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx   /* EFER */
    rdmsr
    or $0x900, %eax         /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax    /* PG | PE */
    and $0x9fffffff, %eax   /* caches on: clear CD, NW */
    mov %eax, %cr0

    lgdt (boot_gdt_ptr)
    ljmp $0x08, $5f

    .code64
5:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %edi, %edi          /* zero-extend magic and info pointer */
    mov %esi, %esi
    call {kmain}
6:
    hlt
    jmp 6b

    .section .rodata
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:
"#,
    kmain = sym crate::kmain_entry,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

/// TSC value read by the first instructions (written once by the trampoline, read-only after).
#[unsafe(no_mangle)]
pub static mut BOOT_TSC: u64 = 0;

/// The TSC at the first instruction.
pub fn boot_tsc() -> u64 {
    // SAFETY: written once by the trampoline before any Rust code runs.
    unsafe { core::ptr::addr_of!(BOOT_TSC).read_volatile() }
}

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static boot_stack_bottom: u8;
}

/// Physical range occupied by the kernel image (code, data, bss, boot stack, boot page tables).
pub fn kernel_range() -> (u64, u64) {
    // Linker-provided symbols; only their addresses are used.
    (
        core::ptr::addr_of!(__kernel_start) as u64,
        core::ptr::addr_of!(__kernel_end) as u64,
    )
}

/// Lowest address of the boot stack (for the stack-overflow guard check in fault reports).
pub fn stack_bottom() -> u64 {
    // Linker-provided symbol; only its address is used.
    core::ptr::addr_of!(boot_stack_bottom) as u64
}
