//! A small SQL builder for statements whose shape depends on the data (multi-row inserts,
//! `IN` lists). sqlx's `QueryBuilder<Any>` writes `?` placeholders, which PostgreSQL rejects;
//! this one writes `$N` for PostgreSQL and `?` for SQLite. SQLite accepts `$N` too, but
//! resolves every named parameter by a linear scan, which made binding a 2,000-value insert
//! quadratic (40% of a sync's CPU); anonymous `?` parameters bind in constant time.

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

use crate::Backend;

pub(crate) struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    n: usize,
    backend: Backend,
    /// Sent unprepared on PostgreSQL, so it is planned with its values every time (see
    /// [`Sql::bind_list`]).
    one_off: bool,
}

impl<'q> Sql<'q> {
    pub(crate) fn new(backend: Backend, text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
            backend,
            one_off: false,
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        self.n += 1;
        match self.backend {
            Backend::Sqlite => self.text.push('?'),
            Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.n.to_string());
            }
        }
        // Encoding into AnyArguments only copies the value; it cannot fail for our types.
        let _ = self.args.add(value);
        self
    }

    /// `(v1, v2, …)` for an `IN` list. Such a statement picks rows of a table that grows
    /// while it runs (a page's offers among the account's), so on PostgreSQL it is sent
    /// unprepared and planned with its values each time: a generic plan cached while the
    /// table was small scans the whole table until autovacuum's next `ANALYZE`, which in a
    /// first sync of 100,000 offers came too late (55 s instead of 9). (SQLite's planner does
    /// not weigh a table's size unless `ANALYZE` ran, which we never do.)
    pub(crate) fn bind_list<T, I>(&mut self, values: I) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
        I: IntoIterator<Item = T>,
    {
        self.one_off = true;
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self.text.push(')');
        self
    }

    /// The statement's text.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// How many values are bound.
    #[cfg(test)]
    pub(crate) fn bound(&self) -> usize {
        self.n
    }

    /// Whether the statement is prepared and cached on its connection.
    fn persistent(&self) -> bool {
        !(self.one_off && self.backend == Backend::Postgres)
    }

    pub(crate) async fn execute<'c, E>(self, ex: E) -> sqlx::Result<sqlx::any::AnyQueryResult>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let persistent = self.persistent();
        let Sql { text, args, .. } = self;
        sqlx::query_with(&text, args)
            .persistent(persistent)
            .execute(ex)
            .await
    }

    pub(crate) async fn fetch_all<'c, E>(self, ex: E) -> sqlx::Result<Vec<sqlx::any::AnyRow>>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let persistent = self.persistent();
        let Sql { text, args, .. } = self;
        sqlx::query_with(&text, args)
            .persistent(persistent)
            .fetch_all(ex)
            .await
    }
}

/// Splits `rows` into runs of `max` rows, and the rest into runs whose lengths are powers of
/// two, largest first: a multi-row statement written for each run then has at most
/// `log2(max) + 2` shapes (`max` itself, and the powers of two below it). Each shape is a
/// statement prepared and cached on its connection (up to sqlx's 100 per connection); with
/// one shape per row count, a first sync of 1,000,000 orders (every page a different number
/// of order lines) kept 21 MB of SQLite's prepared programs, and a `start` whose scans found
/// any number of changed offers per page grew by about 12 MiB per SQLite connection (a
/// 100-row offer upsert is a program of about 300 KB).
pub(crate) fn runs_of_few_sizes<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max > 0);
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (run, tail) = rest.split_at(len);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::runs_of_few_sizes;

    #[test]
    fn rows_go_in_runs_of_the_most_then_powers_of_two_largest_first_and_none_is_lost() {
        let lens = |n: usize, max| -> Vec<usize> {
            let rows: Vec<usize> = (0..n).collect();
            let runs: Vec<&[usize]> = runs_of_few_sizes(&rows, max).collect();
            let again: Vec<usize> = runs.concat();
            assert_eq!(again, rows, "{n} rows in order, each once");
            runs.iter().map(|r| r.len()).collect()
        };
        assert_eq!(lens(0, 128), Vec::<usize>::new());
        assert_eq!(lens(1, 128), [1]);
        assert_eq!(lens(100, 128), [64, 32, 4]);
        assert_eq!(lens(167, 128), [128, 32, 4, 2, 1]);
        assert_eq!(lens(300, 128), [128, 128, 32, 8, 4]);
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..2_000 {
            shapes.extend(lens(n, 128));
        }
        assert_eq!(shapes.len(), 8, "{shapes:?}");
        // A page of offers is one run.
        assert_eq!(lens(100, 100), [100]);
        assert_eq!(lens(99, 100), [64, 32, 2, 1]);
        assert_eq!(lens(250, 100), [100, 100, 32, 16, 2]);
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..2_000 {
            shapes.extend(lens(n, 100));
        }
        assert_eq!(shapes.len(), 8, "{shapes:?}");
    }
}
