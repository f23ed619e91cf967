//! Static vocabulary of the generated marketplace: categories, product nouns, brands,
//! qualifiers, people, places and reference data (VAT rates, handling times).
//!
//! Romanian diacritics (ă â î ș ț Ă Î Ș Ț) are everywhere on purpose: encoding bugs in a
//! client or a database show up on the first page instead of in production.

use rust_decimal::Decimal;

use crate::model::{
    Category, CategoryCharacteristic, FamilyType, FamilyTypeCharacteristic, HandlingTime, VatRate,
};

/// (id, name, parent id) of the ~40 generated categories; offers use the leaves.
pub(crate) const CATEGORIES: &[(u32, &str, Option<u32>)] = &[
    (100, "Electronice și IT", None),
    (200, "Electrocasnice", None),
    (300, "Casă și grădină", None),
    (400, "Sport și activități în aer liber", None),
    (500, "Fashion și textile", None),
    (600, "Jucării și articole pentru copii", None),
    (700, "Auto, moto și bricolaj", None),
    (800, "Îngrijire personală", None),
    (2735, "Căști audio", Some(100)),
    (2736, "Încărcătoare telefoane", Some(100)),
    (2737, "Cabluri și adaptoare", Some(100)),
    (2738, "Boxe portabile", Some(100)),
    (2739, "Baterii externe", Some(100)),
    (2740, "Huse și protecții", Some(100)),
    (2741, "Mouse și tastaturi", Some(100)),
    (2742, "Stick-uri de memorie", Some(100)),
    (2810, "Fierbătoare", Some(200)),
    (2811, "Aspiratoare", Some(200)),
    (2812, "Cântare de bucătărie", Some(200)),
    (2813, "Ventilatoare", Some(200)),
    (2814, "Prăjitoare de pâine", Some(200)),
    (2910, "Lămpi și corpuri de iluminat", Some(300)),
    (2911, "Prelungitoare și ștechere", Some(300)),
    (2912, "Vase de gătit", Some(300)),
    (2913, "Țesături și lenjerii", Some(300)),
    (2914, "Unelte de grădină", Some(300)),
    (3010, "Biciclete și accesorii", Some(400)),
    (3011, "Corturi și saci de dormit", Some(400)),
    (3012, "Mânere și greutăți fitness", Some(400)),
    (3110, "Genți și rucsacuri", Some(500)),
    (3111, "Încălțăminte sport", Some(500)),
    (3112, "Șosete și lenjerie", Some(500)),
    (3210, "Jocuri de societate", Some(600)),
    (3211, "Pătuțuri și țarcuri", Some(600)),
    (3310, "Scule electrice", Some(700)),
    (3311, "Accesorii auto", Some(700)),
    (3312, "Șurubelnițe și chei", Some(700)),
    (3410, "Periuțe de dinți electrice", Some(800)),
    (3411, "Mașini de tuns", Some(800)),
    (3412, "Uscătoare de păr", Some(800)),
];

/// Product nouns and the category they belong to.
pub(crate) const NOUNS: &[(&str, u32)] = &[
    ("Căști audio", 2735),
    ("Căști wireless", 2735),
    ("Încărcător rapid", 2736),
    ("Încărcător auto", 2736),
    ("Cablu USB-C", 2737),
    ("Adaptor HDMI", 2737),
    ("Boxă portabilă", 2738),
    ("Baterie externă", 2739),
    ("Husă din silicon", 2740),
    ("Folie de protecție", 2740),
    ("Mouse optic", 2741),
    ("Tastatură mecanică", 2741),
    ("Stick USB", 2742),
    ("Fierbător electric", 2810),
    ("Aspirator vertical", 2811),
    ("Cântar de bucătărie", 2812),
    ("Ventilator de birou", 2813),
    ("Prăjitor de pâine", 2814),
    ("Lampă de birou", 2910),
    ("Ștecher dublu", 2911),
    ("Prelungitor", 2911),
    ("Tigaie antiaderentă", 2912),
    ("Țesătură decorativă", 2913),
    ("Foarfecă de grădină", 2914),
    ("Mâner bicicletă", 3010),
    ("Cort de camping", 3011),
    ("Mâner fitness", 3012),
    ("Rucsac de drumeție", 3110),
    ("Încălțăminte de alergare", 3111),
    ("Șosete termice", 3112),
    ("Joc de societate", 3210),
    ("Țarc pentru copii", 3211),
    ("Bormașină", 3310),
    ("Încărcător baterie auto", 3311),
    ("Șurubelniță electrică", 3312),
    ("Periuță de dinți electrică", 3410),
    ("Mașină de tuns", 3411),
    ("Uscător de păr", 3412),
];

/// Qualifiers appended to product names; chosen so no gender agreement is needed.
pub(crate) const QUALIFIERS: &[&str] = &[
    "cu încărcare rapidă",
    "fără fir",
    "din oțel inoxidabil",
    "ediție 2025",
    "rezistent la apă",
    "pentru călătorii",
    "cu afișaj digital",
    "ultra-subțire",
    "cu protecție la supratensiune",
    "pentru mașină",
    "set de 2 bucăți",
    "mărime universală",
    "cu lumină LED",
    "ergonomic",
    "profesional",
    "compact",
];

/// (brand, ASCII code used in part numbers).
pub(crate) const BRANDS: &[(&str, &str)] = &[
    ("Generic", "GEN"),
    ("Carpați", "CRP"),
    ("Voltaj", "VLT"),
    ("Măgura", "MGR"),
    ("Nordis", "NRD"),
    ("Țara Bârsei", "TBR"),
    ("Dunărea", "DNR"),
    ("Zăvoi", "ZVO"),
    ("Bistrița Tech", "BST"),
    ("Ursus Home", "URS"),
    ("Arcada", "ARC"),
    ("Stânca", "STN"),
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ștefan",
    "Ioana",
    "Andrei",
    "Mădălina",
    "Cătălin",
    "Irina",
    "Răzvan",
    "Alexandra",
    "Mihai",
    "Ana",
    "Bogdan",
    "Țicu",
    "Elena",
    "Sorin",
    "Anișoara",
    "Dănuț",
    "Iulia",
    "Tudor",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Popescu",
    "Ionescu",
    "Țurcanu",
    "Bălan",
    "Stănescu",
    "Dumitrașcu",
    "Mureșan",
    "Ardeleanu",
    "Căpraru",
    "Jitaru",
    "Șerban",
    "Nițu",
    "Vâlcu",
    "Pârvu",
    "Oprișan",
    "Grigoraș",
];

/// (city, county, locality id, postal code prefix).
pub(crate) const CITIES: &[(&str, &str, u32, &str)] = &[
    ("București", "București", 1, "030"),
    ("Cluj-Napoca", "Cluj", 7, "400"),
    ("Iași", "Iași", 12, "700"),
    ("Timișoara", "Timiș", 21, "300"),
    ("Constanța", "Constanța", 33, "900"),
    ("Brașov", "Brașov", 41, "500"),
    ("Târgu Mureș", "Mureș", 52, "540"),
    ("Pitești", "Argeș", 63, "110"),
    ("Râmnicu Vâlcea", "Vâlcea", 74, "240"),
    ("Bistrița", "Bistrița-Năsăud", 85, "420"),
    ("Suceava", "Suceava", 96, "720"),
    ("Galați", "Galați", 107, "800"),
];

pub(crate) const STREETS: &[&str] = &[
    "Str. Mihai Eminescu",
    "Bd. Ștefan cel Mare",
    "Str. Călărași",
    "Str. Țebei",
    "Calea Bucureștilor",
    "Str. Avram Iancu",
    "Aleea Trandafirilor",
    "Str. Mărășești",
    "Bd. Independenței",
    "Str. Lăcrămioarelor",
];

/// (code, label) of cancellation reasons.
pub(crate) const CANCELLATION_REASONS: &[(u32, &str)] = &[
    (1, "Anulare la cererea clientului"),
    (15, "Clientul a renunțat la comandă"),
    (17, "Produs indisponibil în stoc"),
    (21, "Termen de livrare prea lung"),
    (33, "Comandă duplicat"),
];

/// (code, label) of return reasons.
pub(crate) const RETURN_REASONS: &[(u32, &str)] = &[
    (1, "Produsul nu corespunde descrierii"),
    (2, "Produs defect"),
    (3, "Am găsit un preț mai bun"),
    (4, "Produs deteriorat la livrare"),
    (5, "M-am răzgândit"),
];

/// The VAT table (id 9 is 21 %, the Romanian standard rate since August 2025).
pub(crate) fn vat_rates() -> Vec<VatRate> {
    vec![
        VatRate {
            vat_id: 9,
            vat_rate: Decimal::new(21, 2),
            is_default: 1,
        },
        VatRate {
            vat_id: 4,
            vat_rate: Decimal::new(11, 2),
            is_default: 0,
        },
        VatRate {
            vat_id: 3,
            vat_rate: Decimal::ZERO,
            is_default: 0,
        },
    ]
}

/// The VAT rate of an offer's `vat_id` as a fraction.
pub(crate) fn vat_fraction(vat_id: u32) -> Decimal {
    vat_rates()
        .into_iter()
        .find(|v| v.vat_id == vat_id)
        .map_or(Decimal::new(21, 2), |v| v.vat_rate)
}

pub(crate) fn handling_times() -> Vec<HandlingTime> {
    [0, 1, 2, 3, 5, 7]
        .into_iter()
        .map(|id| HandlingTime { id })
        .collect()
}

/// Builds the category tree; characteristics and values are derived from the position so
/// every category looks different but the table stays static.
pub(crate) fn categories() -> Vec<Category> {
    let characteristic_names: &[(&str, u32)] = &[
        ("Culoare", 11),
        ("Greutate", 2),
        ("Material", 11),
        ("Putere", 2),
        ("Mărime", 60),
        ("Rezistent la apă", 20),
    ];
    CATEGORIES
        .iter()
        .enumerate()
        .map(|(index, &(id, name, parent_id))| {
            let leaf = parent_id.is_some();
            let characteristics: Vec<CategoryCharacteristic> = if leaf {
                (0..3usize)
                    .map(|k| {
                        let (cname, type_id) =
                            characteristic_names[(index + k) % characteristic_names.len()];
                        let cid = id * 10 + u32::try_from(k).unwrap_or(0);
                        CategoryCharacteristic {
                            id: cid,
                            name: cname.to_owned(),
                            type_id,
                            display_order: u32::try_from(k + 1).unwrap_or(1),
                            is_mandatory: u8::from(k == 0),
                            is_filter: 1,
                            allow_new_value: u8::from(type_id == 11),
                            values: match type_id {
                                11 => {
                                    vec!["Negru".into(), "Alb".into(), "Roșu".into(), "Oțel".into()]
                                }
                                20 => vec!["Da".into(), "Nu".into()],
                                60 => vec!["S".into(), "M".into(), "L".into(), "XL".into()],
                                _ => vec!["1 kg".into(), "2,5 kg".into(), "40 W".into()],
                            },
                            tags: Vec::new(),
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let family_types = if leaf && index % 3 == 0 {
                vec![FamilyType {
                    id: id * 100,
                    name: format!("{name} – variante"),
                    characteristics: characteristics
                        .iter()
                        .take(1)
                        .map(|c| FamilyTypeCharacteristic {
                            characteristic_id: c.id,
                            characteristic_family_type_id: 1,
                            is_foldable: 0,
                            display_order: 1,
                        })
                        .collect(),
                }]
            } else {
                Vec::new()
            };
            Category {
                id,
                name: name.to_owned(),
                is_allowed: u8::from(leaf),
                parent_id,
                is_ean_mandatory: u8::from(index % 4 == 0),
                is_warranty_mandatory: u8::from(index % 2 == 0),
                characteristics,
                family_types,
            }
        })
        .collect()
}
