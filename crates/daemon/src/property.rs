//! How the daemon's property tests run, by the same rules as `sundial_proto`'s: a fixed number
//! of generated inputs, and a count of the inputs each property was really checked on, so that a
//! test can assert the property was not vacuous (every input rejected, or every input taking a
//! branch that asserts nothing).

use std::cell::Cell;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};

/// How many inputs every property test draws. Fixed here rather than read from
/// `PROPTEST_CASES`, so that the counts the tests assert do not depend on the environment.
pub(crate) const CASES: u32 = 256;

/// Counts the inputs a property was checked on. `check` calls [`Checked::hit`] on the path
/// that asserts something; a test then compares [`Checked::count`] with what it expects.
#[derive(Debug, Default)]
pub(crate) struct Checked(Cell<u32>);

impl Checked {
    /// Records that one input reached the property's assertions.
    pub(crate) fn hit(&self) {
        self.0.set(self.0.get() + 1);
    }

    /// How many inputs reached the property's assertions.
    pub(crate) fn count(&self) -> u32 {
        self.0.get()
    }
}

/// Runs `check` on [`CASES`] inputs drawn from `strategy` and returns how many it ran on
/// (inputs `prop_assume!` rejects are drawn again and not counted). Panics with the shrunk
/// failing input if the property fails for any of them.
pub(crate) fn run<S>(strategy: S, check: impl Fn(S::Value) -> TestCaseResult) -> u32
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let passed = Cell::new(0u32);
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&strategy, |value| {
        check(value)?;
        passed.set(passed.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    passed.get()
}
