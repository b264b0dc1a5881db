/* The AP trampoline: copied by smp.rs to a free page below 1 MiB (the STARTUP IPI's vector),
 * it takes an AP from real mode to 32-bit protected mode to 64-bit long mode with the boot
 * CPU's page tables, takes a ticket, switches to the stack of that ticket and calls
 * `ap_entry(ticket)`.
 *
 * Position independent: real mode runs with CS = page >> 4 and IP = 0, so every address is an
 * offset from ap_trampoline_start; in 16-bit mode the code patches the GDT pointer and the two
 * far jumps with its linear base (every AP writes the same values). smp.rs fills the parameters
 * (`ApParams`, 8 bytes in) before the first STARTUP IPI. Several APs may run this at once: only
 * the ticket (lock xadd) and the arrival count (lock inc) are written after the patching, and
 * nothing uses a stack before the ticket gives one. Never executed in place (it sits in .rodata). */

    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
    .global ap_trampoline_params
    .global ap_trampoline_end

    .code16
ap_trampoline_start:
    cli
    cld
    jmp 1f
    .balign 8
ap_trampoline_params:
    .skip 40
    .set P_CR3,     ap_trampoline_params + 0  - ap_trampoline_start
    .set P_ENTRY,   ap_trampoline_params + 8  - ap_trampoline_start
    .set P_STACKS,  ap_trampoline_params + 16 - ap_trampoline_start
    .set P_COUNT,   ap_trampoline_params + 24 - ap_trampoline_start
    .set P_TICKET,  ap_trampoline_params + 28 - ap_trampoline_start
    .set P_ARRIVED, ap_trampoline_params + 32 - ap_trampoline_start
    .set P_LONG,    ap_trampoline_params + 36 - ap_trampoline_start
1:
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %ax, %bx
    shl $4, %ebx                    /* ebx = linear address of ap_trampoline_start */
    lock incl (P_ARRIVED)

    mov %ebx, %eax
    add $(tr_gdt - ap_trampoline_start), %eax
    movl %eax, (tr_gdtr + 2 - ap_trampoline_start)
    mov %ebx, %eax
    add $(tr_pm32 - ap_trampoline_start), %eax
    movl %eax, (tr_far32 - ap_trampoline_start)
    mov %ebx, %eax
    add $(tr_lm64 - ap_trampoline_start), %eax
    movl %eax, (tr_far64 - ap_trampoline_start)

    lgdtl (tr_gdtr - ap_trampoline_start)
    mov %cr0, %eax
    or $1, %eax                     /* PE */
    mov %eax, %cr0
    ljmpl *(tr_far32 - ap_trampoline_start)

    .code32
tr_pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov P_CR3(%ebx), %eax           /* the boot CPU's PML4 (below 4 GiB) */
    mov %eax, %cr3
    mov $0xC0000080, %ecx           /* EFER */
    rdmsr
    or $0x900, %eax                 /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax            /* PG | PE */
    and $0x9fffffff, %eax           /* caches on: clear CD, NW */
    mov %eax, %cr0
    ljmp *(tr_far64 - ap_trampoline_start)(%ebx)

    .code64
tr_lm64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov %ebx, %ebx                  /* zero-extend the base */
    lock incl P_LONG(%rbx)
    mov $1, %eax
    lock xadd %eax, P_TICKET(%rbx)
    cmp P_COUNT(%rbx), %eax
    jae 9f                          /* more APs than stacks: not ours to run */
    mov P_STACKS(%rbx), %rcx
    mov (%rcx,%rax,8), %rsp
    and $-16, %rsp
    mov %eax, %edi                  /* ap_entry(ticket) */
    xor %ebp, %ebp
    mov P_ENTRY(%rbx), %rax
    call *%rax
9:
    cli
    hlt
    jmp 9b

    .balign 8
tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
tr_gdt_end:
tr_gdtr:
    .short tr_gdt_end - tr_gdt - 1
    .long 0
tr_far32:
    .long 0
    .short 0x08
tr_far64:
    .long 0
    .short 0x18
ap_trampoline_end:
    .code64
