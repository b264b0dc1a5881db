//! Scenario: flows with idle and hard timeouts expire on the timer, each with a flow-removed
//! event carrying its reason and final counters; entries refreshed by traffic (or by the
//! datapath cache crediting hits) stay while used.

mod pipeline_common;

use pipeline_common::*;
use switch_core::action::{Action, Instructions};
use switch_core::flow::Field;
use switch_core::flow_match::Match;
use switch_core::pipeline::{FlowMod, Pipeline};
use switch_core::port::VlanMode;
use switch_core::table::{FlowModFlags, RemovedReason};

#[test]
fn idle_and_hard_timeouts() {
    let mut b = Bridge::new(Pipeline::default());
    for p in 1..=3 {
        b.add_port(p, VlanMode::default());
    }
    let m = |p: u32| Match::new().with(Field::InPort, p as u128);
    let out = |p: u32| Instructions::apply(vec![Action::output(p)]);
    // idle 10 s, notify; hard 30 s, notify; idle 5 s + hard 60 s, silent.
    let fm1 = FlowMod::add(0, 1, m(1), out(2))
        .with_timeouts(10, 0)
        .with_cookie(1)
        .with_flags(FlowModFlags::SEND_FLOW_REM);
    let fm2 = FlowMod::add(0, 1, m(2), out(3))
        .with_timeouts(0, 30)
        .with_cookie(2)
        .with_flags(FlowModFlags::SEND_FLOW_REM);
    let fm3 = FlowMod::add(0, 1, m(3), out(1))
        .with_timeouts(5, 60)
        .with_cookie(3);
    for fm in [&fm1, &fm2, &fm3] {
        b.pipeline.flow_mod(fm, 0).unwrap();
    }
    let f = tcp_frame(mac(1), mac(2), ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1, 2);
    let gen0 = b.pipeline.generation();

    // Traffic on flow 1 every 4 s for 20 s keeps it alive; flow 2 gets traffic too but its
    // hard timeout does not care; flow 3 sees one packet at t=1 s.
    b.now_ms = 1000;
    b.send(3, &f);
    let mut removed = Vec::new();
    for t in (0..=20_000).step_by(4000) {
        b.now_ms = t;
        assert_eq!(b.send(1, &f).0.ports(), vec![2]);
        assert_eq!(b.send(2, &f).0.ports(), vec![3]);
        removed.extend(b.pipeline.expire(t));
    }
    // Flow 3 went idle at 1 s + 5 s.
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (removed[0].cookie, removed[0].reason),
        (3, RemovedReason::IdleTimeout)
    );
    assert_eq!(
        (removed[0].packet_count, removed[0].byte_count),
        (1, f.len() as u64)
    );
    assert!(!removed[0].notify);
    assert_ne!(b.pipeline.generation(), gen0);

    // Traffic stops at 20 s. At 30 s flow 1 is idle (last use 20 s) and flow 2 hits its hard
    // timeout.
    let r = b.pipeline.expire(29_999);
    assert!(r.is_empty());
    let mut r = b.pipeline.expire(30_000);
    r.sort_by_key(|e| e.cookie);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].cookie, r[0].reason), (1, RemovedReason::IdleTimeout));
    assert_eq!((r[1].cookie, r[1].reason), (2, RemovedReason::HardTimeout));
    for e in &r {
        assert!(e.notify);
        assert_eq!(e.packet_count, 6);
        assert_eq!(e.byte_count, 6 * f.len() as u64);
        assert_eq!(e.duration_ms, 30_000);
    }
    assert_eq!(r[0].idle_timeout, 10);
    assert_eq!(r[1].hard_timeout, 30);
    assert_eq!(b.pipeline.table(0).unwrap().len(), 0);
    // Packets now miss.
    assert!(b.send(1, &f).1.table_miss_drop);
}

#[test]
fn cache_credits_keep_an_idle_entry_alive() {
    let mut p = Pipeline::default();
    let id = p
        .add_flow_entry(
            &FlowMod::add(0, 1, Match::ANY, Instructions::drop()).with_timeouts(10, 0),
            0,
        )
        .unwrap();
    for t in (1000..=50_000).step_by(5000) {
        assert!(p.credit(id, 10, 1000, t));
        assert!(p.expire(t).is_empty());
    }
    let r = p.expire(56_000);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].packet_count, r[0].byte_count), (100, 10_000));
}
