//! The `pipeline` fuzz target's body under proptest, so that stable `cargo test` exercises it:
//! random bytes become random flow-mods, group-mods, port changes and packets; nothing panics.

mod pipeline_fuzz_body;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_controller_and_packet_sequences_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        pipeline_fuzz_body::run(&data);
    }
}
