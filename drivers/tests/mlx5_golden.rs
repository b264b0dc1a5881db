//! Golden vectors from a real ConnectX-4 (FW 14.12.1220): `mlx5_data/trace-mlx5_core.txt.gz` is
//! Linux mlx5_core's debug hexdump of its bring-up (every command entry, input and output
//! mailbox). The driver is brought up with the trace's outputs as the device's replies for
//! every command the trace covers (ENABLE_HCA ... the first CREATE_EQ), the model answering
//! the rest; then
//! - every command input the driver built for those commands is compared with Linux's, byte
//!   for byte over everything the trace dumped, except the fields in [`EXPECTED_DIFFERENCES`]
//!   (each with its reason); entry type, input and output lengths and tokens are compared too;
//! - the driver accepted the trace's outputs: bring-up completes, the values it parsed from them
//!   are the trace's (6 boot pages, 0x3244 init pages, UAR 0x10, EQ 0x10, CX4 caps), and the
//!   port then moves frames.
//!
//! Driver and model take every offset from `drivers::mlx5::layouts`; a wrong entry in that
//! table puts a field at the wrong place in the driver's input and shows as a mismatch here.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use drivers::mlx5::layouts::{Bytes, Field, cmd_entry, ifc, op};
use drivers::mlx5::model::{CommandRecord, ModelConfig, ModelHandle};
use drivers::mlx5::{Mlx5Config, Mlx5Port};
use drivers::nic::Nic;

mod mlx5_common;

/// One command of the trace.
#[derive(Clone, Debug, Default)]
struct TraceCmd {
    opcode: u16,
    op_mod: u16,
    in_entry: Vec<u8>,
    out_entry: Vec<u8>,
    /// Input bytes: 16 inline, then the dumped input mailboxes' data.
    input: Vec<u8>,
    /// Output bytes likewise.
    output: Vec<u8>,
}

impl TraceCmd {
    fn in_len(&self) -> usize {
        be32(&self.in_entry, cmd_entry::IN_LEN) as usize
    }
    fn out_len(&self) -> usize {
        be32(&self.out_entry, cmd_entry::OUT_LEN) as usize
    }
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Parses the hexdump: "dump command NAME(0xOP) INPUT|OUTPUT", entry lines 000..030, then
/// "command block:" dumps of 0x240-byte mailboxes (lines 040..270, data = first 0x200 bytes).
fn parse_trace() -> Vec<TraceCmd> {
    let gz = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/mlx5_data/trace-mlx5_core.txt.gz"
    ))
    .expect("trace file");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    let mut cmds: Vec<TraceCmd> = Vec::new();
    let mut output = false;
    let mut block: Option<Vec<u8>> = None;
    let mut block_base = 0usize;
    let flush = |cmds: &mut Vec<TraceCmd>, block: &mut Option<Vec<u8>>, output: bool| {
        if let (Some(b), Some(c)) = (block.take(), cmds.last_mut()) {
            let data = &b[..b.len().min(0x200)];
            if output {
                c.output.extend_from_slice(data);
            } else {
                c.input.extend_from_slice(data);
            }
        }
    };
    for line in text.lines() {
        if let Some(pos) = line.find("dump command ") {
            flush(&mut cmds, &mut block, output);
            let rest = &line[pos..];
            let open = rest.rfind("(0x").expect("opcode");
            let close = rest[open..].find(')').expect("opcode end") + open;
            let opcode = u16::from_str_radix(&rest[open + 3..close], 16).expect("hex opcode");
            if rest.ends_with("INPUT") {
                cmds.push(TraceCmd {
                    opcode,
                    ..TraceCmd::default()
                });
                output = false;
            } else {
                assert_eq!(cmds.last().map(|c| c.opcode), Some(opcode));
                output = true;
            }
            continue;
        }
        if line.contains("command block:") {
            flush(&mut cmds, &mut block, output);
            block = Some(Vec::new());
            continue;
        }
        // "[  +0.000004] 000: 07000000 00000010 00000000 00000000"
        let Some(colon) = line.find("] ") else {
            continue;
        };
        let body = &line[colon + 2..];
        let Some((off, words)) = body.split_once(": ") else {
            continue;
        };
        let Ok(off) = usize::from_str_radix(off.trim(), 16) else {
            continue;
        };
        let mut bytes = Vec::new();
        for w in words.split_whitespace() {
            let Ok(v) = u32::from_str_radix(w, 16) else {
                break;
            };
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        if bytes.len() != 16 {
            continue;
        }
        let Some(c) = cmds.last_mut() else { continue };
        if off < 0x40 && block.is_none() {
            let e = if output {
                &mut c.out_entry
            } else {
                &mut c.in_entry
            };
            e.extend_from_slice(&bytes);
            if e.len() == 0x40 && !output {
                c.op_mod = u16::from_be_bytes([e[0x16], e[0x17]]);
                c.input = e[0x10..0x20].to_vec();
            }
            if e.len() == 0x40 && output {
                c.output = e[0x20..0x30].to_vec();
            }
        } else if let Some(b) = block.as_mut() {
            // Offsets run on across the blocks of one command (block k at 0x40 + k * 0x240).
            if b.is_empty() {
                block_base = off;
            }
            if off == block_base + b.len() {
                b.extend_from_slice(&bytes);
            }
        }
    }
    flush(&mut cmds, &mut block, output);
    cmds
}

/// A field of a command input that differs from Linux's on purpose.
struct Difference {
    opcode: u16,
    what: &'static str,
    /// Bits (a field) or bytes (a range) of the input.
    field: Option<Field>,
    bytes: Option<Bytes>,
    reason: &'static str,
}

/// Every input field where the driver differs from the real trace, and why. Anything else
/// that differs fails the test.
const EXPECTED_DIFFERENCES: &[Difference] = &[
    Difference {
        opcode: op::MANAGE_PAGES,
        what: "manage_pages_in.pas[]",
        field: None,
        bytes: Some(Bytes::new(ifc::manage_pages_in::PAS.off, usize::MAX)),
        reason: "physical addresses of the pages this host allocated",
    },
    Difference {
        opcode: op::SET_HCA_CAP,
        what: "set_hca_cap_in.capability.cmd_hca_cap.log_max_qp",
        field: Some(ifc::cmd_hca_cap::LOG_MAX_QP.at(ifc::set_hca_cap_in::CAPABILITY.off)),
        bytes: None,
        reason: "Linux's profile raises log_max_qp to 17 (2^17 QPs for RDMA); the switch uses no \
                 QPs and keeps the firmware's current value (the driver only clears \
                 cmdif_checksum, already 0 on this device)",
    },
    Difference {
        opcode: op::CREATE_EQ,
        what: "create_eq_in.eq_context_entry.intr",
        field: Some(ifc::create_eq_in::EQ_CONTEXT_ENTRY_INTR),
        bytes: None,
        reason: "Linux binds its EQs to MSI-X vectors (1 here); the driver polls, vector 0",
    },
    Difference {
        opcode: op::CREATE_EQ,
        what: "create_eq_in.event_bitmask",
        field: None,
        bytes: Some(ifc::create_eq_in::EVENT_BITMASK),
        reason: "Linux's first EQ is its command-completion EQ (bit 10); the driver's one EQ is \
                 the async EQ it polls: CQ error, WQ catastrophic, internal error, port change, \
                 page request (0x0b30)",
    },
    Difference {
        opcode: op::CREATE_EQ,
        what: "create_eq_in.pas[0]",
        field: None,
        bytes: Some(Bytes::new(ifc::create_eq_in::PAS.off, 8)),
        reason: "physical address of the 16 KiB EQ buffer this host allocated",
    },
];

/// Linux issues 10 QUERY_HCA_CAPs after INIT_HCA, the driver 3 (general, Ethernet, flow
/// table), and 4 ALLOC_UARs (the driver 1): tokens, a rolling counter per command, agree
/// until the first command Linux issues and the driver skips (trace command #13).
const TOKENS_AGREE_BEFORE: usize = 13;

/// Trace commands of the bring-up the driver mirrors: #0 ENABLE_HCA .. #27 first CREATE_EQ.
const PREFIX: usize = 28;

/// Zeroes the expected differences of `opcode` in `buf`.
fn mask(opcode: u16, buf: &mut [u8]) {
    for d in EXPECTED_DIFFERENCES.iter().filter(|d| d.opcode == opcode) {
        if let Some(f) = d.field {
            f.set(buf, 0);
        }
        if let Some(b) = d.bytes {
            let end = b.off.saturating_add(b.len).min(buf.len());
            if b.off < end {
                buf[b.off..end].fill(0);
            }
        }
    }
}

/// Byte offsets where the driver's input differs from the trace's (over the dumped bytes),
/// after masking the expected differences.
fn mismatches(trace: &TraceCmd, driver: &[u8]) -> Vec<usize> {
    let n = trace.input.len().min(trace.in_len());
    let mut t = trace.input[..n].to_vec();
    let mut d = driver[..n.min(driver.len())].to_vec();
    d.resize(n, 0);
    mask(trace.opcode, &mut t);
    mask(trace.opcode, &mut d);
    (0..n).filter(|&i| t[i] != d[i]).collect()
}

struct Replay {
    port: Mlx5Port<ModelHandle>,
    model: ModelHandle,
    trace: Vec<TraceCmd>,
    /// (trace index, driver command record) for every replayed command, in order.
    pairs: Vec<(usize, CommandRecord)>,
}

/// Brings the driver up with the trace's outputs as replies.
fn replay() -> Replay {
    let trace = parse_trace();
    let model = ModelHandle::new(ModelConfig::default());
    let matched: Rc<RefCell<Vec<usize>>> = Rc::default();
    let (cmds, seen) = (trace.clone(), matched.clone());
    let mut cursor = 0usize;
    model.with(|m| {
        m.responder = Some(Box::new(move |opcode, op_mod, _input, out_len| {
            let i = (cursor..PREFIX.min(cmds.len()))
                .find(|&i| cmds[i].opcode == opcode && cmds[i].op_mod == op_mod)?;
            cursor = i + 1;
            seen.borrow_mut().push(i);
            let mut out = cmds[i].output.clone();
            out.resize(out_len, 0);
            Some(out)
        }))
    });
    let pool = mlx5_common::pool(&model, 256);
    let port = Mlx5Port::new(model.clone(), pool, "02:00.0", Mlx5Config::default())
        .expect("bring-up with the real device's replies");
    let records: Vec<CommandRecord> =
        model.with(|m| m.log.iter().filter(|r| r.replayed).cloned().collect());
    let matched = matched.borrow().clone();
    assert_eq!(records.len(), matched.len());
    let pairs = matched.into_iter().zip(records).collect();
    Replay {
        port,
        model,
        trace,
        pairs,
    }
}

#[test]
fn trace_parses() {
    let t = parse_trace();
    assert_eq!(t.len(), 42);
    assert_eq!(t[0].opcode, op::ENABLE_HCA);
    assert_eq!(t[0].in_entry.len(), 64);
    assert_eq!(t[0].in_entry[cmd_entry::TOKEN], 1);
    assert_eq!(t[1].output.len(), 16 + 0x200, "QUERY_ISSI output mailbox");
    assert_eq!(be32(&t[1].output, 0x6c), 2, "supported_issi_dw0");
    assert_eq!(t[6].output.len(), 0x1010, "QUERY_HCA_CAP: 8 mailboxes");
    assert_eq!(t[10].in_len(), 0x10 + 8 * 0x3244);
    assert_eq!(t[27].opcode, op::CREATE_EQ);
}

#[test]
fn bring_up_inputs_match_the_real_trace() {
    let r = replay();
    // The driver covers the trace's command kinds in its order.
    let covered: Vec<usize> = r.pairs.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        covered,
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 20, 23, 27],
        "trace commands the driver issued"
    );
    let mut report = Vec::new();
    for (i, rec) in &r.pairs {
        let t = &r.trace[*i];
        assert_eq!(
            rec.entry[cmd_entry::TYPE],
            t.in_entry[cmd_entry::TYPE],
            "#{i} type"
        );
        assert_eq!(
            rec.input.len(),
            t.in_len(),
            "#{i} {:#x} input length",
            t.opcode
        );
        assert_eq!(
            rec.output.len(),
            t.out_len(),
            "#{i} {:#x} output length",
            t.opcode
        );
        if *i < TOKENS_AGREE_BEFORE {
            assert_eq!(rec.token, t.in_entry[cmd_entry::TOKEN], "#{i} token");
        }
        let bad = mismatches(t, &rec.input);
        if !bad.is_empty() {
            report.push(format!(
                "#{i} opcode {:#x}/{}: input bytes differ at {:x?}",
                t.opcode, t.op_mod, bad
            ));
        }
    }
    assert!(
        report.is_empty(),
        "unexpected differences:\n{}",
        report.join("\n")
    );
    // How much was compared: every dumped input byte of the 17 commands.
    let compared: usize = r
        .pairs
        .iter()
        .map(|(i, _)| r.trace[*i].input.len().min(r.trace[*i].in_len()))
        .sum();
    assert!(compared > 90_000, "{compared}");
    for d in EXPECTED_DIFFERENCES {
        assert!(!d.reason.is_empty() && !d.what.is_empty());
    }
}

#[test]
fn expected_differences_really_differ() {
    // Each listed difference is real (not a stale entry): unmasked, the inputs differ there.
    let r = replay();
    for d in EXPECTED_DIFFERENCES {
        // The instance with the most dumped input (the boot MANAGE_PAGES has no mailbox dump).
        let (i, rec) = r
            .pairs
            .iter()
            .filter(|(i, _)| r.trace[*i].opcode == d.opcode)
            .max_by_key(|(i, _)| r.trace[*i].input.len())
            .expect("command present");
        let t = &r.trace[*i];
        let n = t.input.len().min(rec.input.len());
        let differs = match (d.field, d.bytes) {
            (Some(f), _) => f.get(&t.input[..n]) != f.get(&rec.input[..n]),
            (_, Some(b)) => {
                let end = b.off.saturating_add(b.len).min(n);
                b.off < end && t.input[b.off..end] != rec.input[b.off..end]
            }
            _ => false,
        };
        assert!(differs, "{} does not differ", d.what);
    }
}

#[test]
fn comparison_catches_a_wrong_table_entry() {
    // A field written one bit off (as a wrong table entry would) is reported.
    let r = replay();
    let (i, rec) = r
        .pairs
        .iter()
        .find(|(i, _)| r.trace[*i].opcode == op::SET_ISSI)
        .expect("SET_ISSI");
    let mut wrong = rec.input.clone();
    let right = ifc::set_issi_in::CURRENT_ISSI;
    right.set(&mut wrong, 0);
    Field::new(right.off, right.hi, right.lo + 1).set(&mut wrong, 1);
    assert!(!mismatches(&r.trace[*i], &wrong).is_empty());
    assert!(mismatches(&r.trace[*i], &rec.input).is_empty());
}

#[test]
fn driver_accepts_the_real_replies() {
    let mut r = replay();
    let hca = r.port.hca();
    assert_eq!(hca.page_stats.boot, 6);
    assert_eq!(hca.page_stats.init, 0x3244);
    assert_eq!(hca.uar, 0x10);
    assert_eq!(hca.eq.as_ref().map(|e| e.eqn), Some(0x10));
    assert_eq!(hca.caps.port_type, 1, "CX4 Ethernet");
    assert_eq!(hca.caps.num_ports, 1);
    assert!(hca.caps.nic_flow_table);
    // The caps the driver parsed are the trace's (current general caps after INIT_HCA).
    let cur = &r.trace[12].output[0x10..0x110];
    assert_eq!(&hca.caps.general[..0x100], cur);
    assert_eq!(
        hca.caps.log_max_cq_sz,
        ifc::cmd_hca_cap::LOG_MAX_CQ_SZ.get(cur)
    );
    assert!(r.model.pages_held() >= 6 + 0x3244);
    // And the port works on top of them.
    assert!(r.port.link_up());
    let f = mlx5_common::frame(1, 128);
    assert!(r.model.inject(&f));
    let mut rx = drivers::dma::PacketBatch::new();
    assert_eq!(r.port.rx_burst(0, &mut rx), 1);
    assert_eq!(mlx5_common::bytes(&rx), std::slice::from_ref(&f));
    assert_eq!(r.port.tx_burst(0, &mut rx), 1);
    r.model.with(|m| m.run_deferred_tx());
    assert_eq!(r.model.take_tx(), [f]);
}
