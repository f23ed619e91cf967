//! Customer data the oracles can recognise: the seeds' names, phones and addresses are replaced
//! by canaries (`…piiQ0042`, phones `40721990042`), in every shape that has fooled a quoting
//! rule before (quotes, backslashes, backticks, diacritics). An error, a reason or a message
//! that holds one quoted the customer's data instead of describing the shape of the problem.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::json::Json;

/// What every text canary holds.
pub const TEXT_MARK: &str = "piiQ";
/// What every numeric canary (a phone number sent as a JSON number) starts with.
pub const NUMBER_MARK: &str = "4072199";

/// Keys whose values are a customer's data in eMAG's orders and returns (and, for offers,
/// the seller's texts, held to the same rule).
const PERSONAL_KEYS: &[&str] = &[
    "name",
    "email",
    "company",
    "code",
    "registration_number",
    "bank",
    "iban",
    "fax",
    "phone_1",
    "phone_2",
    "phone_3",
    "billing_name",
    "billing_phone",
    "billing_city",
    "billing_street",
    "billing_postal_code",
    "billing_suburb",
    "shipping_street",
    "shipping_city",
    "shipping_contact",
    "shipping_phone",
    "shipping_postal_code",
    "shipping_suburb",
    "customer_name",
    "customer_company",
    "customer_phone",
    "pickup_address",
    "pickup_city",
    "pickup_suburb",
    "pickup_zipcode",
    "observations",
    "product_name",
    "part_number",
    "description",
    "locker_name",
];

/// Shapes of customer data; `{}` is where the mark goes. Quotes, backslashes and backticks
/// around the mark: a rule that strips quoted values but stops at an escaped quote shows it.
const SHAPES: &[&str] = &[
    "Ana Pop {}",
    "Ion \"{}\" Popescu",
    "Str. Lalelelor 3\\{} B",
    "Șoseaua Ștefan cel Mare 12, {} București",
    "O'Brien `{}` Ltd",
    "0722 123 456 {}",
    "a\tb\n{}",
];

/// A text canary `n` in one of the tricky shapes.
pub fn text(rng: &mut ChaCha8Rng, n: u32) -> String {
    let shape = SHAPES.choose(rng).copied().unwrap_or("Ana Pop {}");
    shape.replace("{}", &format!("{TEXT_MARK}{n:04}"))
}

/// Replaces the personal values of `tree` by canaries; phones sometimes as JSON numbers.
pub fn plant(rng: &mut ChaCha8Rng, tree: &mut Json) {
    let mut n = 0;
    tree.for_each_str_mut(None, &mut |key, leaf| {
        let Some(key) = key.filter(|k| PERSONAL_KEYS.contains(k)) else {
            return;
        };
        if !matches!(leaf, Json::Str(_)) {
            return;
        }
        n += 1;
        *leaf = if key.contains("phone") && rng.gen_bool(0.4) {
            Json::Num(format!("{NUMBER_MARK}{:04}", n % 10_000))
        } else {
            Json::Str(text(rng, n))
        };
    });
}

/// The canary `text` holds, if any.
pub fn found(text: &str) -> Option<&str> {
    [TEXT_MARK, NUMBER_MARK]
        .into_iter()
        .find(|m| text.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn personal_values_become_canaries_and_the_rest_stays() {
        let mut tree = Json::parse(
            r#"{"id":5,"status":"new","customer":{"name":"X","phone_1":"0722"},"products":[{"name":"Y","id":1}]}"#,
        )
        .expect("json");
        plant(&mut ChaCha8Rng::seed_from_u64(1), &mut tree);
        let text = tree.render();
        assert_eq!(
            text.matches(TEXT_MARK).count() + text.matches(NUMBER_MARK).count(),
            3
        );
        assert!(text.contains(r#""status":"new""#), "{text}");
        assert!(found("no data here").is_none());
    }
}
