//! Deterministic generation of each account's marketplace data from the seed.
//!
//! Offers are held compactly (`GenOffer`, ~64 bytes: indices into the vocabulary and prices
//! in 1/10000 units) and materialized into wire `Offer`s only when served: a million offers
//! per account must be generated in seconds and fit comfortably in memory. An offer that is
//! edited becomes `OfferRecord::Stored`, a full `Offer`, so every edit goes through one code
//! path regardless of how the offer was born.
//!
//! Each account draws from its own ChaCha8 streams seeded from `seed` + account name, one
//! stream per data kind, so changing `orders_per_account` does not reshuffle the offers.

use chrono::{Duration, NaiveDateTime};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use crate::catalog::{
    vat_fraction, BRANDS, CANCELLATION_REASONS, CITIES, FIRST_NAMES, LAST_NAMES, NOUNS, QUALIFIERS,
    RETURN_REASONS, STREETS,
};
use crate::config::AccountKind;
use crate::model::{
    CancellationReason, Customer, HandlingTimeEntry, Offer, OfferCharacteristic, OfferDetails,
    OfferImage, OfferValidationStatus, Order, OrderDetails, OrderLine, Rma, RmaAwb, RmaProduct,
    StockEntry, ValidationStatus, Voucher,
};

/// Largest seller offer id eMAG accepts on save.
pub(crate) const MAX_OFFER_ID: u32 = 16_777_215;
/// Largest order id eMAG documents.
pub(crate) const MAX_ORDER_ID: u64 = 4_294_967_295;

/// Independent random streams of one account.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Salts = 0,
    Offers = 1,
    Orders = 2,
    Returns = 3,
    Mutations = 4,
}

/// FNV-1a, enough to turn an account name into seed material stably across Rust versions
/// (std's hasher is not guaranteed stable).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The random stream `stream` of account `account` for `seed`.
pub(crate) fn account_rng(seed: u64, account: &str, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(account));
    rng.set_stream(stream as u64);
    rng
}

/// Per-account constants that make the same offer id a different product in every account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Salts {
    pnk: u32,
    pnk_prefix: [u8; 2],
    ean: u64,
    offer_detail_base: u64,
    image_host: u32,
}

impl Salts {
    pub(crate) fn generate(seed: u64, account: &str) -> Self {
        let mut rng = account_rng(seed, account, Stream::Salts);
        let letters = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        Self {
            pnk: rng.gen_range(0..0x0100_0000),
            pnk_prefix: [
                letters[rng.gen_range(0..letters.len())],
                letters[rng.gen_range(0..letters.len())],
            ],
            ean: rng.gen_range(0..1_000_000_000),
            offer_detail_base: rng.gen_range(100_000_000..200_000_000),
            image_host: rng.gen_range(1..20),
        }
    }

    /// A 9-character eMAG-style part number key, injective in `id` within the account.
    fn part_number_key(&self, id: u32) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKLMNPQRSTUVWX";
        // Multiplying by an odd constant modulo 2^24 and xoring a salt are both bijections.
        let mixed = (id.wrapping_mul(0x009E_3779) & 0x00FF_FFFF) ^ self.pnk;
        let mut out = String::with_capacity(9);
        out.push(char::from(self.pnk_prefix[0]));
        out.push(char::from(self.pnk_prefix[1]));
        for shift in [20u32, 15, 10, 5, 0] {
            let digit = (mixed >> shift) & 0x1F;
            out.push(char::from(ALPHABET[usize::try_from(digit).unwrap_or(0)]));
        }
        out.push_str("BM");
        out
    }

    /// A valid EAN-13 with the Romanian 594 prefix, injective in `id` within the account.
    fn ean(&self, id: u32) -> String {
        // 7919 is prime, hence coprime with 10^9: the map is a bijection on ids < 10^9.
        let body = (u64::from(id) * 7919 + self.ean) % 1_000_000_000;
        let digits = format!("594{body:09}");
        let sum: u32 = digits
            .bytes()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        format!("{digits}{}", (10 - sum % 10) % 10)
    }
}

/// The compact form of a generated, never-edited offer. Prices are in 1/10000 RON.
#[derive(Debug, Clone)]
pub(crate) struct GenOffer {
    sale: i64,
    min: i64,
    max: i64,
    /// 0 means no recommended price.
    recommended: i64,
    best: i64,
    stock: u32,
    estimated: u32,
    model: u16,
    noun: u8,
    qualifier: u8,
    brand: u8,
    pub(crate) status: u8,
    validation: u8,
    offer_validation: u8,
    handling: u8,
    warranty: u8,
    number_of_offers: u8,
    rank: u8,
    genius: u8,
}

impl GenOffer {
    pub(crate) fn general_stock(&self) -> u32 {
        self.stock
    }

    pub(crate) fn estimated_stock(&self) -> u32 {
        self.estimated
    }

    pub(crate) fn offer_validation(&self) -> u8 {
        self.offer_validation
    }
}

/// One offer slot of an account, sorted by id in the account's vector.
#[derive(Debug, Clone)]
pub(crate) enum OfferRecord {
    Generated { id: u32, offer: GenOffer },
    Stored(Box<Offer>),
}

impl OfferRecord {
    pub(crate) fn id(&self) -> u32 {
        match self {
            Self::Generated { id, .. } => *id,
            Self::Stored(offer) => offer.id,
        }
    }

    pub(crate) fn status(&self) -> u8 {
        match self {
            Self::Generated { offer, .. } => offer.status,
            Self::Stored(offer) => offer.status,
        }
    }

    pub(crate) fn general_stock(&self) -> u32 {
        match self {
            Self::Generated { offer, .. } => offer.general_stock(),
            Self::Stored(offer) => offer.general_stock,
        }
    }

    pub(crate) fn estimated_stock(&self) -> u32 {
        match self {
            Self::Generated { offer, .. } => offer.estimated_stock(),
            Self::Stored(offer) => offer.estimated_stock,
        }
    }

    pub(crate) fn offer_validation(&self) -> u8 {
        match self {
            Self::Generated { offer, .. } => offer.offer_validation(),
            Self::Stored(offer) => offer.offer_validation_status.value,
        }
    }

    /// The part number without building the whole offer (filtering a million offers).
    pub(crate) fn part_number(&self) -> String {
        match self {
            Self::Generated { id, offer } => generated_part_number(*id, offer),
            Self::Stored(offer) => offer.part_number.clone(),
        }
    }

    pub(crate) fn part_number_key(&self, salts: &Salts) -> String {
        match self {
            Self::Generated { id, .. } => salts.part_number_key(*id),
            Self::Stored(offer) => offer.part_number_key.clone(),
        }
    }

    /// The wire form of this offer.
    pub(crate) fn materialize(&self, salts: &Salts) -> Offer {
        match self {
            Self::Generated { id, offer } => materialize(*id, offer, salts),
            Self::Stored(offer) => (**offer).clone(),
        }
    }
}

fn units(value: i64) -> Decimal {
    Decimal::new(value, 4)
}

fn generated_part_number(id: u32, offer: &GenOffer) -> String {
    let code = BRANDS[usize::from(offer.brand) % BRANDS.len()].1;
    format!("{code}-{id}-M{}", offer.model)
}

fn validation_description(value: u8) -> &'static str {
    match value {
        1 => "In MKTP validation",
        3 => "Waiting for EAN approval",
        9 => "Approved documentation",
        11 => "Update awaiting approval",
        12 => "Update rejected",
        _ => "Draft",
    }
}

pub(crate) fn validation_status(value: u8) -> Vec<ValidationStatus> {
    vec![ValidationStatus {
        value,
        description: validation_description(value).to_owned(),
        errors: None,
    }]
}

pub(crate) fn offer_validation_status(value: u8) -> OfferValidationStatus {
    OfferValidationStatus {
        value,
        description: if value == 1 { "Valid" } else { "Invalid price" }.to_owned(),
    }
}

fn materialize(id: u32, offer: &GenOffer, salts: &Salts) -> Offer {
    let (noun, category_id) = NOUNS[usize::from(offer.noun) % NOUNS.len()];
    let qualifier = QUALIFIERS[usize::from(offer.qualifier) % QUALIFIERS.len()];
    let brand = BRANDS[usize::from(offer.brand) % BRANDS.len()].0;
    let name = format!("{noun} {brand} {qualifier}, model M{}", offer.model);
    let pnk = salts.part_number_key(id);
    let recommended = (offer.recommended > 0).then(|| units(offer.recommended));
    Offer {
        id,
        part_number: generated_part_number(id, offer),
        description: format!(
            "<p>{name}. Produs nou, sigilat, cu garanție {} luni. Livrare în toată țara.</p>",
            offer.warranty
        ),
        url: format!("https://www.emag.ro/-/pd/{pnk}/"),
        images: vec![OfferImage {
            url: format!(
                "https://s{}emagst.akamaized.test/products/{id}/{pnk}.jpg",
                salts.image_host
            ),
            display_type: 1,
        }],
        part_number_key: pnk,
        name,
        brand: brand.to_owned(),
        category_id,
        vendor_category_id: None,
        ean: vec![salts.ean(id)],
        status: offer.status,
        sale_price: units(offer.sale),
        recommended_price: recommended,
        min_sale_price: units(offer.min),
        max_sale_price: units(offer.max),
        best_offer_sale_price: units(offer.best),
        best_offer_recommended_price: recommended,
        currency: "RON".to_owned(),
        vat_id: 9,
        stock: vec![StockEntry {
            warehouse_id: 1,
            value: offer.stock,
        }],
        general_stock: offer.stock,
        estimated_stock: offer.estimated,
        handling_time: vec![HandlingTimeEntry {
            warehouse_id: 1,
            value: u32::from(offer.handling),
        }],
        warranty: u32::from(offer.warranty),
        characteristics: vec![OfferCharacteristic {
            id: category_id * 10,
            value: ["Negru", "Alb", "Roșu", "Oțel"][usize::from(offer.model) % 4].to_owned(),
        }],
        number_of_offers: u32::from(offer.number_of_offers),
        buy_button_rank: u32::from(offer.rank),
        ownership: if offer.number_of_offers > 1 { 2 } else { 1 },
        validation_status: validation_status(offer.validation),
        translation_validation_status: validation_status(offer.validation),
        offer_validation_status: offer_validation_status(offer.offer_validation),
        genius_eligibility: u8::from(offer.genius > 0),
        genius_eligibility_type: offer.genius.max(1),
        genius_computed: offer.genius,
        manufacturer: false,
        eu_representative: false,
        offer_details: OfferDetails {
            id: salts.offer_detail_base + u64::from(id) * 3,
        },
    }
}

/// Draws one offer. Gross prices end in .99 like a shop's; eMAG stores them without VAT,
/// which yields the characteristic four-decimal values (39.66 / 1.21 = 32.7769).
pub(crate) fn generate_offer(rng: &mut ChaCha8Rng) -> GenOffer {
    let gross_cents: i64 = rng.gen_range(5..3000) * 100 + 99;
    // Net in 1/10000 units, rounded half up: gross_cents * 100 / 1.21.
    let sale = (gross_cents * 100 * 100 * 2 + 121) / (121 * 2);
    let min = sale * rng.gen_range(70..95) / 100;
    let max = sale * rng.gen_range(130..200) / 100;
    let recommended = if rng.gen_bool(0.5) {
        sale * rng.gen_range(110..140) / 100
    } else {
        0
    };
    let number_of_offers: u8 = if rng.gen_bool(0.7) {
        1
    } else {
        rng.gen_range(2..9)
    };
    let rank = if number_of_offers == 1 {
        1
    } else {
        rng.gen_range(1..=number_of_offers)
    };
    let best = if rank > 1 {
        sale * rng.gen_range(85..100) / 100
    } else {
        sale
    };
    let stock = if rng.gen_bool(0.1) {
        0
    } else {
        rng.gen_range(1..200)
    };
    let reserved = if stock > 0 {
        rng.gen_range(0..=stock.min(3))
    } else {
        0
    };
    let status = match rng.gen_range(0..100) {
        0..=89 => 1,
        90..=96 => 0,
        _ => 2,
    };
    let validation = match rng.gen_range(0..100) {
        0..=91 => 9,
        92..=94 => 11,
        95..=96 => 1,
        97..=98 => 3,
        _ => 12,
    };
    GenOffer {
        sale,
        min,
        max,
        recommended,
        best,
        stock,
        estimated: stock - reserved,
        model: rng.gen_range(100..1000),
        noun: rng.gen_range(0..u8::try_from(NOUNS.len()).unwrap_or(u8::MAX)),
        qualifier: rng.gen_range(0..u8::try_from(QUALIFIERS.len()).unwrap_or(u8::MAX)),
        brand: rng.gen_range(0..u8::try_from(BRANDS.len()).unwrap_or(u8::MAX)),
        status,
        validation,
        offer_validation: if rng.gen_bool(0.03) { 2 } else { 1 },
        handling: [0, 1, 1, 1, 2, 3][rng.gen_range(0..6)],
        warranty: [12, 24, 24, 36][rng.gen_range(0..4)],
        number_of_offers,
        rank,
        genius: [0, 0, 1, 2, 3][rng.gen_range(0..5)],
    }
}

/// Generates offers with ids `first..first+count`, already sorted by id.
pub(crate) fn generate_offers(rng: &mut ChaCha8Rng, first: u32, count: u32) -> Vec<OfferRecord> {
    let last = first
        .saturating_add(count)
        .min(MAX_OFFER_ID.saturating_add(1));
    (first..last)
        .map(|id| OfferRecord::Generated {
            id,
            offer: generate_offer(rng),
        })
        .collect()
}

/// What an order generator needs to know about its account.
#[derive(Debug)]
pub(crate) struct OrderContext<'a> {
    pub(crate) kind: AccountKind,
    pub(crate) offers: &'a [OfferRecord],
    pub(crate) salts: &'a Salts,
}

/// Order status for an order placed `age` before now: recent orders are still moving,
/// old ones are mostly finalized.
fn status_for_age(rng: &mut ChaCha8Rng, age: Duration) -> u8 {
    let roll = rng.gen_range(0..100);
    if age < Duration::days(1) {
        match roll {
            0..=49 => 1,
            50..=79 => 2,
            80..=89 => 3,
            _ => 0,
        }
    } else if age < Duration::days(3) {
        match roll {
            0..=34 => 2,
            35..=59 => 3,
            60..=89 => 4,
            _ => 0,
        }
    } else {
        match roll {
            0..=79 => 4,
            80..=89 => 0,
            _ => 5,
        }
    }
}

fn random_duration(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let max_s = max.num_seconds().max(0);
    Duration::seconds(if max_s == 0 {
        0
    } else {
        rng.gen_range(0..=max_s)
    })
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn customer(rng: &mut ChaCha8Rng, created: NaiveDateTime) -> Customer {
    let name = format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES));
    let &(city, county, locality, postal) = pick(rng, CITIES);
    let street = format!("{} nr. {}", pick(rng, STREETS), rng.gen_range(1..120));
    let postal_code = format!("{postal}{:03}", rng.gen_range(0..1000));
    let phone = format!("07{:08}", rng.gen_range(0..100_000_000));
    let legal = rng.gen_bool(0.1);
    let id = rng.gen_range(100_000..10_000_000);
    Customer {
        id,
        mkt_id: id + 7_000_000,
        email: format!(
            "{:010x}@emag.ro",
            rng.gen_range(0..u64::from(u32::MAX) * 64)
        ),
        company: legal.then(|| format!("SC {} Construct SRL", pick(rng, LAST_NAMES))),
        gender: Some(if rng.gen_bool(0.5) { "M" } else { "F" }.to_owned()),
        code: legal.then(|| format!("RO{}", rng.gen_range(10_000_000..50_000_000))),
        registration_number: legal.then(|| {
            format!(
                "J{:02}/{}/2015",
                rng.gen_range(1..52),
                rng.gen_range(100..9999)
            )
        }),
        bank: legal.then(|| "Banca Transilvania".to_owned()),
        iban: legal.then(|| {
            format!(
                "RO{:02}BTRL{:016}",
                rng.gen_range(10..99),
                rng.gen_range(0..10_000_000_000_000_000_u64)
            )
        }),
        fax: None,
        legal_entity: u8::from(legal),
        is_vat_payer: u8::from(legal),
        phone_1: phone.clone(),
        phone_2: None,
        phone_3: None,
        billing_name: name.clone(),
        billing_phone: phone.clone(),
        billing_country: "RO".to_owned(),
        billing_suburb: county.to_owned(),
        billing_city: city.to_owned(),
        billing_locality_id: locality.to_string(),
        billing_street: street.clone(),
        billing_postal_code: postal_code.clone(),
        shipping_country: "RO".to_owned(),
        shipping_suburb: county.to_owned(),
        shipping_city: city.to_owned(),
        shipping_locality_id: locality.to_string(),
        shipping_street: street,
        shipping_postal_code: postal_code,
        shipping_contact: name.clone(),
        shipping_phone: phone,
        name,
        created,
        modified: created,
    }
}

/// Builds one order placed at `date`, last modified at `modified`.
#[expect(
    clippy::too_many_arguments,
    reason = "a private builder called from two places"
)]
pub(crate) fn build_order(
    rng: &mut ChaCha8Rng,
    ctx: &OrderContext<'_>,
    id: u64,
    first_line_id: u64,
    order_type: u8,
    status: u8,
    date: NaiveDateTime,
    modified: NaiveDateTime,
) -> Order {
    let line_count = if ctx.offers.is_empty() {
        0
    } else {
        [1, 1, 1, 2, 2, 3][rng.gen_range(0..6)]
    };
    let mut products = Vec::with_capacity(line_count);
    for k in 0..line_count {
        let record = &ctx.offers[rng.gen_range(0..ctx.offers.len())];
        let offer = record.materialize(ctx.salts);
        let quantity = [1, 1, 1, 2, 3][rng.gen_range(0..5)];
        let returned = status == 5;
        products.push(OrderLine {
            id: first_line_id + k as u64,
            product_id: offer.id,
            ext_part_number: offer.part_number.clone(),
            part_number: offer.part_number,
            part_number_key: offer.part_number_key,
            name: offer.name,
            quantity: if returned { 0 } else { quantity },
            initial_qty: quantity,
            storno_qty: if returned { quantity } else { 0 },
            sale_price: offer.sale_price,
            original_price: offer.recommended_price.unwrap_or(offer.sale_price),
            currency: "RON".to_owned(),
            vat: vat_fraction(offer.vat_id),
            status: u8::from(status != 0),
            created: date,
            modified: if status == 0 || returned {
                modified
            } else {
                date
            },
            details: Vec::new(),
            product_voucher_split: Vec::new(),
            attachments: Vec::new(),
        });
    }
    let (payment_mode_id, method) = match rng.gen_range(0..100) {
        0..=54 => (1, "Ramburs"),
        55..=94 => (3, "Card online"),
        _ => (2, "Ordin de plată"),
    };
    let payment_status = u8::from(payment_mode_id == 3 || (payment_mode_id == 1 && status == 4));
    let pickup = rng.gen_bool(0.3);
    let details = if pickup {
        OrderDetails {
            locker_id: Some(format!(
                "{:08x}-0000-4000-8000-{:012x}",
                rng.gen::<u32>(),
                rng.gen_range(0..1_u64 << 48)
            )),
            locker_name: Some(format!(
                "easybox {} {}",
                pick(rng, CITIES).0,
                rng.gen_range(1..400)
            )),
            locker_delivery_eligible: Some(1),
            courier_external_office_id: None,
        }
    } else {
        OrderDetails {
            locker_delivery_eligible: Some(u8::from(rng.gen_bool(0.8))),
            ..OrderDetails::default()
        }
    };
    let shipping_tax = *pick(
        rng,
        &[
            Decimal::ZERO,
            Decimal::new(999, 2),
            Decimal::new(1599, 2),
            Decimal::new(1999, 2),
        ],
    );
    let vouchers = if rng.gen_bool(0.15) {
        let gross = Decimal::from(*pick(rng, &[10, 25, 50]));
        let net = (gross / Decimal::new(121, 2)).round_dp(4);
        vec![Voucher {
            voucher_id: rng.gen_range(1_000_000..9_000_000),
            voucher_name: format!("Reducere fidelitate -{gross} lei"),
            sale_price: -net,
            sale_price_vat: -(gross - net),
            vat: Decimal::new(21, 2),
            status: 1,
            created: date,
            modified: date,
            issue_date: date,
        }]
    } else {
        Vec::new()
    };
    let reason_cancellation = (status == 0).then(|| {
        let &(code, label) = pick(rng, CANCELLATION_REASONS);
        CancellationReason {
            id: code,
            name: label.to_owned(),
        }
    });
    Order {
        id,
        status,
        is_complete: u8::from(status != 1 || rng.gen_bool(0.9)),
        order_type,
        payment_mode_id,
        detailed_payment_method: method.to_owned(),
        payment_status,
        delivery_mode: if pickup { "pickup" } else { "courier" }.to_owned(),
        details,
        date,
        modified,
        shipping_tax,
        shipping_tax_voucher_split: Vec::new(),
        customer: customer(rng, date),
        products,
        vouchers,
        attachments: Vec::new(),
        is_storno: status == 5,
        reason_cancellation,
        enforced_vendor_courier_accounts: None,
    }
}

/// The order type of a newly generated order of an account of `kind`.
pub(crate) fn order_type_for(rng: &mut ChaCha8Rng, kind: AccountKind) -> u8 {
    match kind {
        AccountKind::Main => 3,
        AccountKind::Fbe => {
            if rng.gen_bool(0.75) {
                2
            } else {
                3
            }
        }
    }
}

/// Lines per order are numbered from this base, account by account.
pub(crate) fn first_line_id(account_index: usize) -> u64 {
    80_000_000 + (account_index as u64 % 30) * 20_000_000
}

/// Generates `count` orders spread over the 60 days before `epoch`, sorted by id; ids grow
/// with the order date and start above 2^31 so 32-bit signed ids overflow.
pub(crate) fn generate_orders(
    rng: &mut ChaCha8Rng,
    ctx: &OrderContext<'_>,
    account_index: usize,
    count: u32,
    epoch: NaiveDateTime,
) -> Vec<Order> {
    let span = Duration::days(60).num_seconds();
    let mut dates: Vec<NaiveDateTime> = (0..count)
        .map(|_| epoch - Duration::seconds(rng.gen_range(60..span)))
        .collect();
    dates.sort_unstable();
    // Accounts get disjoint id ranges so an id never names two orders.
    let mut id =
        3_000_000_000 + (account_index as u64 % 30) * 40_000_000 + rng.gen_range(0..1_000_000);
    let mut line_id = first_line_id(account_index);
    let mut orders = Vec::with_capacity(dates.len());
    for date in dates {
        id = (id + rng.gen_range(1..10)).min(MAX_ORDER_ID);
        let age = epoch - date;
        let status = status_for_age(rng, age);
        let order_type = order_type_for(rng, ctx.kind);
        let modified = if status == 1 {
            date + random_duration(rng, Duration::minutes(2).min(age))
        } else {
            date + random_duration(rng, Duration::days(5).min(age))
        };
        let order = build_order(
            rng,
            ctx,
            id,
            line_id,
            order_type,
            status,
            date,
            modified.min(epoch),
        );
        line_id += order.products.len() as u64 + 1;
        orders.push(order);
    }
    orders
}

/// Generates a few return requests from finalized or returned orders, sorted by `emag_id`.
pub(crate) fn generate_returns(
    rng: &mut ChaCha8Rng,
    orders: &[Order],
    epoch: NaiveDateTime,
) -> Vec<Rma> {
    let mut candidates: Vec<&Order> = orders
        .iter()
        .filter(|o| matches!(o.status, 4 | 5) && !o.products.is_empty())
        .collect();
    candidates.shuffle(rng);
    let wanted = (orders.len() / 15).max(3).min(candidates.len());
    let mut picked: Vec<(NaiveDateTime, &Order)> = candidates
        .into_iter()
        .take(wanted)
        .map(|o| {
            let date = (o.modified + Duration::hours(rng.gen_range(2..120))).min(epoch);
            (date, o)
        })
        .collect();
    picked.sort_by_key(|(date, o)| (*date, o.id));
    let mut emag_id = 1_100_000 + rng.gen_range(0..100_000);
    picked
        .into_iter()
        .map(|(date, order)| {
            emag_id += rng.gen_range(1..50);
            let line = &order.products[0];
            let &(reason, label) = pick(rng, RETURN_REASONS);
            let &(city, county, locality, postal) = pick(rng, CITIES);
            Rma {
                emag_id,
                order_id: order.id,
                rma_type: order.order_type,
                customer_name: order.customer.name.clone(),
                customer_company: order.customer.company.clone(),
                customer_phone: order.customer.phone_1.clone(),
                products: vec![RmaProduct {
                    id: emag_id * 10,
                    product_emag_id: 50_000_000 + u64::from(line.product_id),
                    product_id: line.product_id,
                    quantity: line.initial_qty.max(1),
                    product_name: line.name.clone(),
                    return_reason: reason,
                    observations: Some(label.to_owned()),
                    diagnostic: None,
                    reject_reason: None,
                    refund_value: line.sale_price * Decimal::from(line.initial_qty.max(1)),
                }],
                awbs: vec![RmaAwb {
                    reservation_id: 700_000_000 + emag_id,
                }],
                pickup_country: "RO".to_owned(),
                pickup_suburb: county.to_owned(),
                pickup_city: city.to_owned(),
                pickup_address: format!("{} nr. {}", pick(rng, STREETS), rng.gen_range(1..120)),
                pickup_zipcode: format!("{postal}{:03}", rng.gen_range(0..1000)),
                pickup_locality_id: locality,
                pickup_method: [1, 1, 2, 3][rng.gen_range(0..4)],
                return_reason: reason,
                observations: None,
                return_type: [3, 3, 1, 5][rng.gen_range(0..4)],
                return_address_id: Some(1),
                date,
                request_status: [2, 3, 6, 7, 7, 4, 5][rng.gen_range(0..7)],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_number_keys_are_nine_alphanumerics_and_unique_within_an_account() {
        let salts = Salts::generate(42, "main");
        let keys: std::collections::HashSet<String> =
            (1..=50_000).map(|id| salts.part_number_key(id)).collect();
        assert_eq!(keys.len(), 50_000);
        assert!(keys
            .iter()
            .all(|k| k.len() == 9 && k.chars().all(|c| c.is_ascii_alphanumeric())));
    }

    #[test]
    fn generated_eans_carry_a_valid_check_digit() {
        let salts = Salts::generate(42, "main");
        let ean = salts.ean(1208);
        assert_eq!(ean.len(), 13);
        let digits: Vec<u32> = ean.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, d)| d * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        assert_eq!(sum % 10, 0);
    }

    #[test]
    fn generated_prices_have_four_decimals_and_sit_inside_their_range() {
        let mut rng = account_rng(42, "main", Stream::Offers);
        for _ in 0..1000 {
            let offer = generate_offer(&mut rng);
            assert!(offer.min <= offer.sale && offer.sale <= offer.max);
            assert!(offer.recommended == 0 || offer.recommended > offer.sale);
        }
    }
}
