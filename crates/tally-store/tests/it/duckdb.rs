//! The embedded store, in a data dir of its own for each test.

use tally_store::{DuckDbStore, Store};
use tally_testkit::conformance::TestStore;

struct Fixture {
    store: DuckDbStore,
    _dir: tempfile::TempDir,
}

impl TestStore for Fixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }
}

fn open() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    Fixture {
        store: DuckDbStore::open(dir.path()).expect("open"),
        _dir: dir,
    }
}

tally_testkit::store_tests!(open);
