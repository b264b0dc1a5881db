//! CPU tables: a GDT with a TSS (separate stacks for double fault and NMI) per CPU, and one IDT,
//! shared by every CPU, whose 32 exception vectors go through naked stubs to one report: CPU,
//! vector, error code, registers. The external vectors serve parked APs (see `smp`): the wake
//! IPI (and any stray interrupt) is acknowledged and returns, the APIC's spurious vector only
//! returns.
//!
//! The boot CPU's tables are statics ([`init`]); each AP builds its own GDT and TSS on the heap
//! with the IST stacks `smp` allocated for it ([`init_ap`]). The selectors are the same on every
//! CPU (code 0x08, data 0x10, TSS 0x18), so the shared IDT's entries fit all of them.

use core::arch::naked_asm;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

const IST_STACK_SIZE: usize = 16 * 1024;
const IST_DOUBLE_FAULT: usize = 0;
const IST_NMI: usize = 1;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);
static mut DF_STACK: Stack = Stack([0; IST_STACK_SIZE]);
static mut NMI_STACK: Stack = Stack([0; IST_STACK_SIZE]);

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(
    GlobalDescriptorTable,
    SegmentSelector,
    SegmentSelector,
    SegmentSelector,
)> = Once::new();

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl IdtEntry {
    const EMPTY: IdtEntry = IdtEntry {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn new(handler: u64, selector: u16, ist: u8) -> Self {
        IdtEntry {
            offset_low: handler as u16,
            selector,
            ist,
            attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([IdtEntry; 256]);
static IDT: Once<Idt> = Once::new();

/// The boot CPU's tables (first thing after the serial port; also points GS at per-CPU slot 0).
pub fn init() {
    crate::percpu::install(0);
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        // The IST stacks are used only by the CPU on the corresponding exceptions.
        let df = core::ptr::addr_of!(DF_STACK) as u64 + IST_STACK_SIZE as u64;
        let nmi = core::ptr::addr_of!(NMI_STACK) as u64 + IST_STACK_SIZE as u64;
        tss.interrupt_stack_table[IST_DOUBLE_FAULT] = VirtAddr::new(df);
        tss.interrupt_stack_table[IST_NMI] = VirtAddr::new(nmi);
        tss
    });
    let (gdt, code, data, tss_sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        (gdt, code, data, tss_sel)
    });
    load_gdt(gdt, *code, *data, *tss_sel);

    let idt = IDT.call_once(|| {
        let mut idt = Idt([IdtEntry::EMPTY; 256]);
        for (vector, stub) in STUBS.iter().enumerate() {
            let ist = match vector {
                2 => IST_NMI as u8 + 1,
                8 => IST_DOUBLE_FAULT as u8 + 1,
                _ => 0,
            };
            idt.0[vector] = IdtEntry::new(*stub as usize as u64, code.0, ist);
        }
        // Every external vector acknowledges and returns: the wake IPI is the only interrupt
        // a parked AP expects (LVTs masked, nothing routed to it), but a stray one must not
        // take down a CPU that only sleeps.
        for entry in &mut idt.0[32..] {
            *entry = IdtEntry::new(wake_stub as *const () as u64, code.0, 0);
        }
        idt.0[crate::apic::SPURIOUS_VECTOR as usize] =
            IdtEntry::new(spurious_stub as *const () as u64, code.0, 0);
        idt
    });
    load_idt(idt);
}

fn load_gdt(
    gdt: &'static GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
) {
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded.
    unsafe {
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        load_tss(tss);
    }
}

fn load_idt(idt: &'static Idt) {
    let ptr = x86_64::structures::DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the IDT is 'static and every entry points at a valid stub.
    unsafe { x86_64::instructions::tables::lidt(&ptr) };
}

/// An AP's tables: its own GDT and TSS (IST stacks at `df_top`, `nmi_top`), the shared IDT.
/// Called once per AP, after [`init`] ran on the boot CPU.
pub fn init_ap(df_top: u64, nmi_top: u64) {
    use alloc::boxed::Box;
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[IST_DOUBLE_FAULT] = VirtAddr::new(df_top);
    tss.interrupt_stack_table[IST_NMI] = VirtAddr::new(nmi_top);
    let tss: &'static TaskStateSegment = Box::leak(Box::new(tss));
    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    load_gdt(gdt, code, data, tss_sel);
    load_idt(IDT.get().expect("cpu::init ran on the boot CPU"));
}

/// The wake IPI of a parked AP (and any stray external interrupt): acknowledge it; the AP's
/// `hlt` is over, which is the point.
#[unsafe(naked)]
extern "C" fn wake_stub() {
    naked_asm!(
        // Caller-saved registers (9 pushes keep the stack 16-byte aligned for the call).
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "cld",
        "call {eoi}",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "iretq",
        eoi = sym crate::apic::eoi,
    )
}

/// The APIC's spurious vector: no EOI, nothing to do.
#[unsafe(naked)]
extern "C" fn spurious_stub() {
    naked_asm!("iretq")
}

/// What the stubs push: general registers (last pushed first), vector, error code, CPU frame.
#[repr(C)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating-point",
    "alignment check",
    "machine check",
    "SIMD floating-point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

extern "C" fn exception_handler(f: &ExceptionFrame) -> ! {
    let name = NAMES.get(f.vector as usize).copied().unwrap_or("unknown");
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let e = crate::serial::write_emergency;
    e(format_args!(
        "\nEXCEPTION: {name} (vector {}) error={:#x}\n",
        f.vector, f.error_code
    ));
    let this = crate::percpu::current();
    e(format_args!(
        "  cpu={} apic={}\n",
        this.index(),
        this.apic_id.load(core::sync::atomic::Ordering::Relaxed) as i32
    ));
    e(format_args!(
        "  rip={:#018x} cs={:#x} rflags={:#x} rsp={:#018x} ss={:#x}\n",
        f.rip, f.cs, f.rflags, f.rsp, f.ss
    ));
    e(format_args!(
        "  cr2={:#018x} cr3={:#018x}\n",
        cr2,
        x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64()
    ));
    e(format_args!(
        "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n",
        f.rax, f.rbx, f.rcx, f.rdx
    ));
    e(format_args!(
        "  rsi={:#018x} rdi={:#018x} rbp={:#018x}  r8={:#018x}\n",
        f.rsi, f.rdi, f.rbp, f.r8
    ));
    e(format_args!(
        "   r9={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}\n",
        f.r9, f.r10, f.r11, f.r12
    ));
    e(format_args!(
        "  r13={:#018x} r14={:#018x} r15={:#018x}\n",
        f.r13, f.r14, f.r15
    ));
    if f.vector == 14 && f.error_code & 1 == 0 {
        e(format_args!("  (access to an unmapped address)\n"));
    }
    let stack_bottom = match this
        .stack_bottom
        .load(core::sync::atomic::Ordering::Relaxed)
    {
        0 => crate::boot::stack_bottom(),
        ap => ap,
    };
    if f.vector == 8 && f.rsp < stack_bottom + 4096 {
        e(format_args!("  (kernel stack overflow)\n"));
    }
    crate::exit::fatal(crate::on_panic())
}

#[unsafe(naked)]
extern "C" fn exception_common() {
    naked_asm!(
        "push rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rdi, rsp",
        "cld",
        "call {handler}",
        "ud2",
        handler = sym exception_handler,
    )
}

macro_rules! stub {
    ($name:ident, $vector:literal, error_code) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!("push {v}", "jmp {c}", v = const $vector, c = sym exception_common)
        }
    };
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!("push 0", "push {v}", "jmp {c}", v = const $vector, c = sym exception_common)
        }
    };
}

stub!(v0, 0);
stub!(v1, 1);
stub!(v2, 2);
stub!(v3, 3);
stub!(v4, 4);
stub!(v5, 5);
stub!(v6, 6);
stub!(v7, 7);
stub!(v8, 8, error_code);
stub!(v9, 9);
stub!(v10, 10, error_code);
stub!(v11, 11, error_code);
stub!(v12, 12, error_code);
stub!(v13, 13, error_code);
stub!(v14, 14, error_code);
stub!(v15, 15);
stub!(v16, 16);
stub!(v17, 17, error_code);
stub!(v18, 18);
stub!(v19, 19);
stub!(v20, 20);
stub!(v21, 21, error_code);
stub!(v22, 22);
stub!(v23, 23);
stub!(v24, 24);
stub!(v25, 25);
stub!(v26, 26);
stub!(v27, 27);
stub!(v28, 28);
stub!(v29, 29, error_code);
stub!(v30, 30, error_code);
stub!(v31, 31);

static STUBS: [extern "C" fn(); 32] = [
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17, v18, v19, v20,
    v21, v22, v23, v24, v25, v26, v27, v28, v29, v30, v31,
];
