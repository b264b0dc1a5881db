//! OpenFlow 1.0's table miss: with `table_miss_to_controller`, a packet that no entry matches is a
//! packet-in (reason NO_MATCH, `miss_send_len`); without it (the OpenFlow 1.3 default) it is dropped.
//! Toggling it changes the pipeline's generation, so no cached decision outlives it.

use switch_core::flow::FlowKey;
use switch_core::packet::HeapFrame;
use switch_core::pipeline::{Env, OutputSink, PacketIn, PacketInReason, Pipeline, PipelineConfig};
use switch_core::port::{Port, PortNo, PortTable};

#[derive(Default)]
struct Sink {
    outputs: Vec<PortNo>,
    packet_ins: Vec<(PacketInReason, u8, u16, usize)>,
}

impl OutputSink for Sink {
    fn output(&mut self, port: PortNo, _queue: Option<u32>, _frame: &[u8]) {
        self.outputs.push(port);
    }
    fn controller(&mut self, pi: &PacketIn<'_>) {
        self.packet_ins
            .push((pi.reason, pi.table_id, pi.max_len, pi.frame.len()));
    }
}

fn run(p: &mut Pipeline) -> Sink {
    let mut ports = PortTable::new();
    ports.add(Port::new(1, "eth1", [2, 0, 0, 0, 0, 1])).unwrap();
    ports.add(Port::new(2, "eth2", [2, 0, 0, 0, 0, 2])).unwrap();
    let bytes: Vec<u8> = [0xff; 6]
        .iter()
        .chain(&[2, 0, 0, 0, 0, 9, 0x08, 0x06])
        .copied()
        .chain([0u8; 46])
        .collect();
    let mut frame = HeapFrame::new(&bytes);
    let mut key = FlowKey::ZERO;
    switch_core::extract::extract(&bytes, 1, &mut key);
    let mut wc = FlowKey::ZERO;
    let mut sink = Sink::default();
    let mut env = Env::new(&ports, 0);
    p.process(&mut env, &mut key, &mut frame, &mut wc, &mut sink);
    sink
}

#[test]
fn table_miss_goes_to_the_controller_only_when_asked() {
    let mut p = Pipeline::new(PipelineConfig {
        n_tables: 1,
        miss_send_len: 128,
        ..PipelineConfig::default()
    });
    let dropped = run(&mut p);
    assert!(dropped.outputs.is_empty() && dropped.packet_ins.is_empty());

    let g = p.generation();
    p.set_table_miss_to_controller(true);
    assert_ne!(p.generation(), g, "the change must invalidate caches");
    let g = p.generation();
    p.set_table_miss_to_controller(true);
    assert_eq!(p.generation(), g, "setting the same value changes nothing");

    let sent = run(&mut p);
    assert!(sent.outputs.is_empty());
    assert_eq!(sent.packet_ins, [(PacketInReason::NoMatch, 0, 128, 60)]);

    p.set_table_miss_to_controller(false);
    assert!(run(&mut p).packet_ins.is_empty());
}
