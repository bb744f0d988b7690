//! What one function holds of `sql`: the queries its `queries` lists, each
//! bound to its database. A query not listed is not here.

use super::{SqlDatabase, Statement};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A granted query: one statement, or a transaction's statements.
#[derive(Clone)]
pub enum Granted {
    Single {
        database: String,
        db: Arc<dyn SqlDatabase>,
        st: Arc<Statement>,
    },
    Transaction {
        database: String,
        db: Arc<dyn SqlDatabase>,
        steps: Vec<Arc<Statement>>,
    },
}

impl Granted {
    pub fn database(&self) -> (&str, &dyn SqlDatabase) {
        match self {
            Granted::Single { database, db, .. } | Granted::Transaction { database, db, .. } => (database, &**db),
        }
    }
}

#[derive(Clone, Default)]
pub struct SqlGrant {
    pub queries: BTreeMap<String, Granted>,
}

impl SqlGrant {
    /// The granted names, comma-separated, for messages.
    pub fn names(&self) -> String {
        self.queries.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Debug for SqlGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.queries.keys()).finish()
    }
}
