//! Wire models: one struct per eMAG result object, whose serde form is exactly the JSON eMAG
//! returns for it (field names of emag-api.md §6.2, §6.7, §6.10, §6.12).
//!
//! These are mirrors of the wire, not domain types: integers stay integers where eMAG sends
//! codes, money is `Decimal` (numbers for offers, four-decimal strings for orders), datetimes
//! are Bucharest-local naive values. Tests deserialize API answers straight into them.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::wire;

/// One stock line of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockEntry {
    pub warehouse_id: u32,
    pub value: u32,
}

/// One handling-time line of an offer (days until handed to the courier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingTimeEntry {
    pub warehouse_id: u32,
    pub value: u32,
}

/// A product image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferImage {
    pub url: String,
    /// 0 other, 1 main, 2 secondary.
    pub display_type: u8,
}

/// A characteristic value of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferCharacteristic {
    pub id: u32,
    pub value: String,
}

/// One entry of `validation_status` / `translation_validation_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationStatus {
    pub value: u8,
    pub description: String,
    pub errors: Option<serde_json::Value>,
}

/// `offer_validation_status`: 1 valid, 2 invalid price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferValidationStatus {
    pub value: u8,
    pub description: String,
}

/// `offer_details`: eMAG's own internal id of the offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferDetails {
    pub id: u64,
}

/// One result of `product_offer/read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Seller id, 1..=16777215; unique per account only.
    pub id: u32,
    pub part_number: String,
    pub part_number_key: String,
    pub name: String,
    pub brand: String,
    pub description: String,
    pub url: String,
    pub category_id: u32,
    pub vendor_category_id: Option<u32>,
    pub ean: Vec<String>,
    /// 0 inactive, 1 active, 2 end of life.
    pub status: u8,
    #[serde(with = "wire::number")]
    pub sale_price: Decimal,
    #[serde(with = "wire::opt_number")]
    pub recommended_price: Option<Decimal>,
    #[serde(with = "wire::number")]
    pub min_sale_price: Decimal,
    #[serde(with = "wire::number")]
    pub max_sale_price: Decimal,
    #[serde(with = "wire::number")]
    pub best_offer_sale_price: Decimal,
    #[serde(with = "wire::opt_number")]
    pub best_offer_recommended_price: Option<Decimal>,
    pub currency: String,
    pub vat_id: u32,
    pub stock: Vec<StockEntry>,
    pub general_stock: u32,
    pub estimated_stock: u32,
    pub handling_time: Vec<HandlingTimeEntry>,
    pub warranty: u32,
    pub images: Vec<OfferImage>,
    pub characteristics: Vec<OfferCharacteristic>,
    pub number_of_offers: u32,
    pub buy_button_rank: u32,
    /// 1 may edit content, 2 may not.
    pub ownership: u8,
    pub validation_status: Vec<ValidationStatus>,
    pub translation_validation_status: Vec<ValidationStatus>,
    pub offer_validation_status: OfferValidationStatus,
    pub genius_eligibility: u8,
    pub genius_eligibility_type: u8,
    pub genius_computed: u8,
    pub manufacturer: bool,
    pub eu_representative: bool,
    pub offer_details: OfferDetails,
}

/// `details` of an order (locker data for pickup deliveries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locker_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locker_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locker_delivery_eligible: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub courier_external_office_id: Option<String>,
}

/// The buyer of an order (email is a hash-like alias, never the real address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: u64,
    pub mkt_id: u64,
    pub name: String,
    pub email: String,
    pub company: Option<String>,
    pub gender: Option<String>,
    pub code: Option<String>,
    pub registration_number: Option<String>,
    pub bank: Option<String>,
    pub iban: Option<String>,
    pub fax: Option<String>,
    pub legal_entity: u8,
    pub is_vat_payer: u8,
    pub phone_1: String,
    pub phone_2: Option<String>,
    pub phone_3: Option<String>,
    pub billing_name: String,
    pub billing_phone: String,
    pub billing_country: String,
    pub billing_suburb: String,
    pub billing_city: String,
    pub billing_locality_id: String,
    pub billing_street: String,
    pub billing_postal_code: String,
    pub shipping_country: String,
    pub shipping_suburb: String,
    pub shipping_city: String,
    pub shipping_locality_id: String,
    pub shipping_street: String,
    pub shipping_postal_code: String,
    pub shipping_contact: String,
    pub shipping_phone: String,
    #[serde(with = "wire::datetime")]
    pub created: NaiveDateTime,
    #[serde(with = "wire::datetime")]
    pub modified: NaiveDateTime,
}

/// One product line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    /// eMAG order-line id.
    pub id: u64,
    /// The seller offer id (of the account that holds the order).
    pub product_id: u32,
    pub part_number: String,
    pub ext_part_number: String,
    pub part_number_key: String,
    pub name: String,
    pub quantity: u32,
    pub initial_qty: u32,
    pub storno_qty: u32,
    #[serde(with = "wire::string4")]
    pub sale_price: Decimal,
    #[serde(with = "wire::string4")]
    pub original_price: Decimal,
    pub currency: String,
    /// VAT rate as a fraction, e.g. "0.2100".
    #[serde(with = "wire::string4")]
    pub vat: Decimal,
    /// 0 cancelled, 1 active.
    pub status: u8,
    #[serde(with = "wire::datetime")]
    pub created: NaiveDateTime,
    #[serde(with = "wire::datetime")]
    pub modified: NaiveDateTime,
    pub details: Vec<serde_json::Value>,
    pub product_voucher_split: Vec<serde_json::Value>,
    pub attachments: Vec<serde_json::Value>,
}

/// A voucher applied to an order; amounts are negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub voucher_id: u64,
    pub voucher_name: String,
    #[serde(with = "wire::string4")]
    pub sale_price: Decimal,
    #[serde(with = "wire::string4")]
    pub sale_price_vat: Decimal,
    #[serde(with = "wire::string4")]
    pub vat: Decimal,
    pub status: u8,
    #[serde(with = "wire::datetime")]
    pub created: NaiveDateTime,
    #[serde(with = "wire::datetime")]
    pub modified: NaiveDateTime,
    #[serde(with = "wire::datetime")]
    pub issue_date: NaiveDateTime,
}

/// `reason_cancellation` of a cancelled order (code and label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationReason {
    pub id: u32,
    pub name: String,
}

/// One result of `order/read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Above 2^31 on purpose: int32 ids are a classic bug.
    pub id: u64,
    /// 0 cancelled, 1 new, 2 in progress, 3 prepared, 4 finalized, 5 returned.
    pub status: u8,
    pub is_complete: u8,
    /// 2 fulfilled by eMAG (FBE), 3 fulfilled by the seller.
    #[serde(rename = "type")]
    pub order_type: u8,
    /// 1 cash on delivery, 2 bank transfer, 3 online card.
    pub payment_mode_id: u8,
    pub detailed_payment_method: String,
    pub payment_status: u8,
    pub delivery_mode: String,
    pub details: OrderDetails,
    #[serde(with = "wire::datetime")]
    pub date: NaiveDateTime,
    #[serde(with = "wire::datetime")]
    pub modified: NaiveDateTime,
    #[serde(with = "wire::string4")]
    pub shipping_tax: Decimal,
    pub shipping_tax_voucher_split: Vec<serde_json::Value>,
    pub customer: Customer,
    pub products: Vec<OrderLine>,
    pub vouchers: Vec<Voucher>,
    pub attachments: Vec<serde_json::Value>,
    pub is_storno: bool,
    pub reason_cancellation: Option<CancellationReason>,
    pub enforced_vendor_courier_accounts: Option<Vec<serde_json::Value>>,
}

/// A characteristic a category defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCharacteristic {
    pub id: u32,
    pub name: String,
    /// 1 numeric, 2 numeric+unit, 11 text, 20 boolean, 30 resolution, 40 volume, 60 size.
    pub type_id: u32,
    pub display_order: u32,
    pub is_mandatory: u8,
    pub is_filter: u8,
    pub allow_new_value: u8,
    /// Only filled when a single category is read by id, as eMAG does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    pub tags: Vec<String>,
}

/// A characteristic's role inside a product family type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyTypeCharacteristic {
    pub characteristic_id: u32,
    pub characteristic_family_type_id: u8,
    pub is_foldable: u8,
    pub display_order: u32,
}

/// A product family type of a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyType {
    pub id: u32,
    pub name: String,
    pub characteristics: Vec<FamilyTypeCharacteristic>,
}

/// One result of `category/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: u32,
    pub name: String,
    pub is_allowed: u8,
    pub parent_id: Option<u32>,
    pub is_ean_mandatory: u8,
    pub is_warranty_mandatory: u8,
    pub characteristics: Vec<CategoryCharacteristic>,
    pub family_types: Vec<FamilyType>,
}

/// One result of `vat/read`; the rate is a fraction sent as a JSON number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatRate {
    pub vat_id: u32,
    #[serde(with = "wire::number")]
    pub vat_rate: Decimal,
    pub is_default: u8,
}

/// One result of `handling_time/read`: an allowed number of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingTime {
    pub id: u32,
}

/// A returned product inside a return request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmaProduct {
    pub id: u64,
    pub product_emag_id: u64,
    /// The seller offer id.
    pub product_id: u32,
    pub quantity: u32,
    pub product_name: String,
    pub return_reason: u32,
    pub observations: Option<String>,
    pub diagnostic: Option<String>,
    pub reject_reason: Option<String>,
    #[serde(with = "wire::string4")]
    pub refund_value: Decimal,
}

/// An AWB reservation attached to a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmaAwb {
    pub reservation_id: u64,
}

/// One result of `rma/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rma {
    pub emag_id: u64,
    pub order_id: u64,
    /// 2 FBE, 3 seller-fulfilled, like the order it comes from.
    #[serde(rename = "type")]
    pub rma_type: u8,
    pub customer_name: String,
    pub customer_company: Option<String>,
    pub customer_phone: String,
    pub products: Vec<RmaProduct>,
    pub awbs: Vec<RmaAwb>,
    pub pickup_country: String,
    pub pickup_suburb: String,
    pub pickup_city: String,
    pub pickup_address: String,
    pub pickup_zipcode: String,
    pub pickup_locality_id: u32,
    /// 1 eMAG courier, 2 seller courier, 3 sent by the customer.
    pub pickup_method: u8,
    pub return_reason: u32,
    pub observations: Option<String>,
    /// 1 same product, 2 other product, 3 refund, 4 cancel payment contract, 5 voucher.
    pub return_type: u8,
    pub return_address_id: Option<u32>,
    /// Creation date of the request.
    #[serde(with = "wire::datetime")]
    pub date: NaiveDateTime,
    /// 1 incomplete, 2 new, 3 acknowledged, 4 refused, 5 cancelled, 6 received, 7 finalized.
    pub request_status: u8,
}
