//! A small SQL builder for statements whose shape depends on the data (multi-row inserts,
//! `IN` lists). sqlx's `QueryBuilder<Any>` writes `?` placeholders, which PostgreSQL rejects;
//! this one writes `$N`, which both of our backends accept.

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

#[derive(Default)]
pub(crate) struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    n: usize,
}

impl<'q> Sql<'q> {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
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
        self.text.push('$');
        self.text.push_str(&self.n.to_string());
        // Encoding into AnyArguments only copies the value; it cannot fail for our types.
        let _ = self.args.add(value);
        self
    }

    /// `(v1, v2, …)` for an `IN` list.
    pub(crate) fn bind_list<T, I>(&mut self, values: I) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
        I: IntoIterator<Item = T>,
    {
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

    pub(crate) async fn execute<'c, E>(self, ex: E) -> sqlx::Result<sqlx::any::AnyQueryResult>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let Sql { text, args, .. } = self;
        sqlx::query_with(&text, args).execute(ex).await
    }

    pub(crate) async fn fetch_all<'c, E>(self, ex: E) -> sqlx::Result<Vec<sqlx::any::AnyRow>>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let Sql { text, args, .. } = self;
        sqlx::query_with(&text, args).fetch_all(ex).await
    }
}
