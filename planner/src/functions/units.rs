//! KQL unit conversions (`convert_angle`, `convert_energy`, `convert_force`, `convert_length`,
//! `convert_mass`, `convert_speed`, `convert_temperature`, `convert_volume`): a real value in one
//! unit of a quantity, converted to another unit of it. Kusto does these with the .NET UnitsNet
//! library, so the unit names are UnitsNet's (exactly those Kusto documents for each function)
//! and every unit carries UnitsNet's own pair of formulas: from the unit to the quantity's base
//! unit, and from the base unit back to the unit. A conversion goes from the source unit to the
//! base unit and on to the target unit with the same floating-point operations in the same order
//! as UnitsNet, so results agree with Kusto's to the last bit; converting a unit to itself gives
//! the value unchanged. Temperatures are affine (offsets, not only factors), which the formula
//! pairs express as well. An unknown unit name, a null argument, or a value or result that is not
//! finite gives null.

use std::f64::consts::PI;

use datafusion::common::ScalarValue;

use super::args::{arg_str, real, typed};
use super::string::string_arg;
use super::udf::{RowFn, RowState, s_f64, sv_f64};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;

/// One unit of a quantity: its name as Kusto spells it, the conversion of a value in this unit
/// to the quantity's base unit, and the conversion of a value in the base unit to this unit.
type Unit = (&'static str, fn(f64) -> f64, fn(f64) -> f64);

/// `convert_angle` units; the base unit is `Degree`.
static ANGLE: &[Unit] = &[
    ("Arcminute", |x| x / 60.0, |b| b * 60.0),
    ("Arcsecond", |x| x / 3600.0, |b| b * 3600.0),
    ("Centiradian", |x| (x * 180.0 / PI) * 1e-2, |b| (b / 180.0 * PI) / 1e-2),
    ("Deciradian", |x| (x * 180.0 / PI) * 1e-1, |b| (b / 180.0 * PI) / 1e-1),
    ("Degree", |x| x, |b| b),
    ("Gradian", |x| x * 0.9, |b| b / 0.9),
    ("Microdegree", |x| x * 1e-6, |b| b / 1e-6),
    ("Microradian", |x| (x * 180.0 / PI) * 1e-6, |b| (b / 180.0 * PI) / 1e-6),
    ("Millidegree", |x| x * 1e-3, |b| b / 1e-3),
    ("Milliradian", |x| (x * 180.0 / PI) * 1e-3, |b| (b / 180.0 * PI) / 1e-3),
    ("Nanodegree", |x| x * 1e-9, |b| b / 1e-9),
    ("Nanoradian", |x| (x * 180.0 / PI) * 1e-9, |b| (b / 180.0 * PI) / 1e-9),
    ("NatoMil", |x| x * 9.0 / 160.0, |b| b * 160.0 / 9.0),
    ("Radian", |x| x * 180.0 / PI, |b| b / 180.0 * PI),
    ("Revolution", |x| x * 360.0, |b| b / 360.0),
    ("Tilt", |x| x.asin() * 180.0 / PI, |b| (b / 180.0 * PI).sin()),
];

/// British thermal unit, in joules.
const BTU: f64 = 1055.05585262;
/// Electron volt, in joules.
const EV: f64 = 1.602176565e-19;
/// Therm (EC), in joules.
const THERM_EC: f64 = 1.05505585262e8;
/// Therm (imperial), in joules.
const THERM_IMPERIAL: f64 = 1.05505585257348e8;
/// Therm (US), in joules.
const THERM_US: f64 = 1.054804e8;

/// `convert_energy` units; the base unit is `Joule`.
static ENERGY: &[Unit] = &[
    ("BritishThermalUnit", |x| x * BTU, |b| b / BTU),
    ("Calorie", |x| x * 4.184, |b| b / 4.184),
    ("DecathermEc", |x| (x * THERM_EC) * 1e1, |b| (b / THERM_EC) / 1e1),
    ("DecathermImperial", |x| (x * THERM_IMPERIAL) * 1e1, |b| (b / THERM_IMPERIAL) / 1e1),
    ("DecathermUs", |x| (x * THERM_US) * 1e1, |b| (b / THERM_US) / 1e1),
    ("ElectronVolt", |x| x * EV, |b| b / EV),
    ("Erg", |x| x * 1e-7, |b| b / 1e-7),
    ("FootPound", |x| x * 1.355817948, |b| b / 1.355817948),
    ("GigabritishThermalUnit", |x| (x * BTU) * 1e9, |b| (b / BTU) / 1e9),
    ("GigaelectronVolt", |x| (x * EV) * 1e9, |b| (b / EV) / 1e9),
    ("Gigajoule", |x| x * 1e9, |b| b / 1e9),
    ("GigawattDay", |x| (x * 24.0 * 3600.0) * 1e9, |b| (b / (24.0 * 3600.0)) / 1e9),
    ("GigawattHour", |x| (x * 3600.0) * 1e9, |b| (b / 3600.0) / 1e9),
    ("HorsepowerHour", |x| x * 2.6845195377e6, |b| b / 2.6845195377e6),
    ("Joule", |x| x, |b| b),
    ("KilobritishThermalUnit", |x| (x * BTU) * 1e3, |b| (b / BTU) / 1e3),
    ("Kilocalorie", |x| (x * 4.184) * 1e3, |b| (b / 4.184) / 1e3),
    ("KiloelectronVolt", |x| (x * EV) * 1e3, |b| (b / EV) / 1e3),
    ("Kilojoule", |x| x * 1e3, |b| b / 1e3),
    ("KilowattDay", |x| (x * 24.0 * 3600.0) * 1e3, |b| (b / (24.0 * 3600.0)) / 1e3),
    ("KilowattHour", |x| (x * 3600.0) * 1e3, |b| (b / 3600.0) / 1e3),
    ("MegabritishThermalUnit", |x| (x * BTU) * 1e6, |b| (b / BTU) / 1e6),
    ("Megacalorie", |x| (x * 4.184) * 1e6, |b| (b / 4.184) / 1e6),
    ("MegaelectronVolt", |x| (x * EV) * 1e6, |b| (b / EV) / 1e6),
    ("Megajoule", |x| x * 1e6, |b| b / 1e6),
    ("MegawattDay", |x| (x * 24.0 * 3600.0) * 1e6, |b| (b / (24.0 * 3600.0)) / 1e6),
    ("MegawattHour", |x| (x * 3600.0) * 1e6, |b| (b / 3600.0) / 1e6),
    ("Millijoule", |x| x * 1e-3, |b| b / 1e-3),
    ("TeraelectronVolt", |x| (x * EV) * 1e12, |b| (b / EV) / 1e12),
    ("TerawattDay", |x| (x * 24.0 * 3600.0) * 1e12, |b| (b / (24.0 * 3600.0)) / 1e12),
    ("TerawattHour", |x| (x * 3600.0) * 1e12, |b| (b / 3600.0) / 1e12),
    ("ThermEc", |x| x * THERM_EC, |b| b / THERM_EC),
    ("ThermImperial", |x| x * THERM_IMPERIAL, |b| b / THERM_IMPERIAL),
    ("ThermUs", |x| x * THERM_US, |b| b / THERM_US),
    ("WattDay", |x| x * 24.0 * 3600.0, |b| b / (24.0 * 3600.0)),
    ("WattHour", |x| x * 3600.0, |b| b / 3600.0),
];

/// Kilogram-force (and kilopond), in newtons.
const KGF: f64 = 9.80665002864;
/// Pound-force, in newtons.
const LBF: f64 = 4.448221615260509;

/// `convert_force` units; the base unit is `Newton`.
static FORCE: &[Unit] = &[
    ("Decanewton", |x| x * 1e1, |b| b / 1e1),
    ("Dyn", |x| x / 1e5, |b| b * 1e5),
    ("KilogramForce", |x| x * KGF, |b| b / KGF),
    ("Kilonewton", |x| x * 1e3, |b| b / 1e3),
    ("KiloPond", |x| x * KGF, |b| b / KGF),
    ("KilopoundForce", |x| (x * LBF) * 1e3, |b| (b / LBF) / 1e3),
    ("Meganewton", |x| x * 1e6, |b| b / 1e6),
    ("Micronewton", |x| x * 1e-6, |b| b / 1e-6),
    ("Millinewton", |x| x * 1e-3, |b| b / 1e-3),
    ("Newton", |x| x, |b| b),
    ("OunceForce", |x| x * 0.2780138509537812, |b| b / 0.2780138509537812),
    ("Poundal", |x| x * 0.1382550279897304, |b| b / 0.1382550279897304),
    ("PoundForce", |x| x * LBF, |b| b / LBF),
    ("ShortTonForce", |x| x * 8.896443230521e3, |b| b / 8.896443230521e3),
    ("TonneForce", |x| x * 9.80665002864e3, |b| b / 9.80665002864e3),
];

/// Light year, in meters.
const LIGHT_YEAR: f64 = 9.46073047258e15;
/// Parsec, in meters.
const PARSEC: f64 = 3.08567758128e16;

/// `convert_length` units; the base unit is `Meter`.
static LENGTH: &[Unit] = &[
    ("Angstrom", |x| x * 1e-10, |b| b / 1e-10),
    ("AstronomicalUnit", |x| x * 1.495978707e11, |b| b / 1.495978707e11),
    ("Centimeter", |x| x * 1e-2, |b| b / 1e-2),
    ("Chain", |x| x * 20.1168, |b| b / 20.1168),
    ("DataMile", |x| x * 1828.8, |b| b / 1828.8),
    ("Decameter", |x| x * 1e1, |b| b / 1e1),
    ("Decimeter", |x| x * 1e-1, |b| b / 1e-1),
    ("DtpPica", |x| x / 236.220472441, |b| b * 236.220472441),
    ("DtpPoint", |x| (x / 72.0) * 2.54e-2, |b| (b / 2.54e-2) * 72.0),
    ("Fathom", |x| x * 1.8288, |b| b / 1.8288),
    ("Foot", |x| x * 0.3048, |b| b / 0.3048),
    ("Hand", |x| x * 1.016e-1, |b| b / 1.016e-1),
    ("Hectometer", |x| x * 1e2, |b| b / 1e2),
    ("Inch", |x| x * 2.54e-2, |b| b / 2.54e-2),
    ("KilolightYear", |x| (x * LIGHT_YEAR) * 1e3, |b| (b / LIGHT_YEAR) / 1e3),
    ("Kilometer", |x| x * 1e3, |b| b / 1e3),
    ("Kiloparsec", |x| (x * PARSEC) * 1e3, |b| (b / PARSEC) / 1e3),
    ("LightYear", |x| x * LIGHT_YEAR, |b| b / LIGHT_YEAR),
    ("MegalightYear", |x| (x * LIGHT_YEAR) * 1e6, |b| (b / LIGHT_YEAR) / 1e6),
    ("Megaparsec", |x| (x * PARSEC) * 1e6, |b| (b / PARSEC) / 1e6),
    ("Meter", |x| x, |b| b),
    ("Microinch", |x| x * 2.54e-8, |b| b / 2.54e-8),
    ("Micrometer", |x| x * 1e-6, |b| b / 1e-6),
    ("Mil", |x| x * 2.54e-5, |b| b / 2.54e-5),
    ("Mile", |x| x * 1609.34, |b| b / 1609.34),
    ("Millimeter", |x| x * 1e-3, |b| b / 1e-3),
    ("Nanometer", |x| x * 1e-9, |b| b / 1e-9),
    ("NauticalMile", |x| x * 1852.0, |b| b / 1852.0),
    ("Parsec", |x| x * PARSEC, |b| b / PARSEC),
    ("PrinterPica", |x| x / 237.106301584, |b| b * 237.106301584),
    ("PrinterPoint", |x| (x / 72.27) * 2.54e-2, |b| (b / 2.54e-2) * 72.27),
    ("Shackle", |x| x * 27.432, |b| b / 27.432),
    ("SolarRadius", |x| x * 6.9551e8, |b| b / 6.9551e8),
    ("Twip", |x| x / 56692.913385826, |b| b * 56692.913385826),
    ("UsSurveyFoot", |x| x * 1200.0 / 3937.0, |b| b * 3937.0 / 1200.0),
    ("Yard", |x| x * 0.9144, |b| b / 0.9144),
];

/// Pound, in kilograms.
const POUND: f64 = 0.45359237;

/// `convert_mass` units; the base unit is `Kilogram`. The metric units are prefixed grams, as in
/// UnitsNet (a gram is a thousandth of the base unit, then the prefix applies).
static MASS: &[Unit] = &[
    ("Centigram", |x| (x / 1e3) * 1e-2, |b| (b * 1e3) / 1e-2),
    ("Decagram", |x| (x / 1e3) * 1e1, |b| (b * 1e3) / 1e1),
    ("Decigram", |x| (x / 1e3) * 1e-1, |b| (b * 1e3) / 1e-1),
    ("EarthMass", |x| x * 5.9722e24, |b| b / 5.9722e24),
    ("Grain", |x| x / 15432.358352941432, |b| b * 15432.358352941432),
    ("Gram", |x| x / 1e3, |b| b * 1e3),
    ("Hectogram", |x| (x / 1e3) * 1e2, |b| (b * 1e3) / 1e2),
    ("Kilogram", |x| x, |b| b),
    ("Kilopound", |x| (x * POUND) * 1e3, |b| (b / POUND) / 1e3),
    ("Kilotonne", |x| (x * 1e3) * 1e3, |b| (b / 1e3) / 1e3),
    ("LongHundredweight", |x| x / 0.01968413055222121, |b| b * 0.01968413055222121),
    ("LongTon", |x| x * 1.0160469088e3, |b| b / 1.0160469088e3),
    ("Megapound", |x| (x * POUND) * 1e6, |b| (b / POUND) / 1e6),
    ("Megatonne", |x| (x * 1e3) * 1e6, |b| (b / 1e3) / 1e6),
    ("Microgram", |x| (x / 1e3) * 1e-6, |b| (b * 1e3) / 1e-6),
    ("Milligram", |x| (x / 1e3) * 1e-3, |b| (b * 1e3) / 1e-3),
    ("Nanogram", |x| (x / 1e3) * 1e-9, |b| (b * 1e3) / 1e-9),
    ("Ounce", |x| x / 35.2739619, |b| b * 35.2739619),
    ("Pound", |x| x * POUND, |b| b / POUND),
    ("ShortHundredweight", |x| x / 0.022046226218487758, |b| b * 0.022046226218487758),
    ("ShortTon", |x| x * 9.0718474e2, |b| b / 9.0718474e2),
    ("Slug", |x| x / 6.852176556196105e-2, |b| b * 6.852176556196105e-2),
    ("SolarMass", |x| x * 1.98947e30, |b| b / 1.98947e30),
    ("Stone", |x| x / 0.1574731728702698, |b| b * 0.1574731728702698),
    ("Tonne", |x| x * 1e3, |b| b / 1e3),
];

/// `convert_speed` units; the base unit is `MeterPerSecond`.
static SPEED: &[Unit] = &[
    ("CentimeterPerHour", |x| (x / 3600.0) * 1e-2, |b| (b * 3600.0) / 1e-2),
    ("CentimeterPerMinute", |x| (x / 60.0) * 1e-2, |b| (b * 60.0) / 1e-2),
    ("CentimeterPerSecond", |x| x * 1e-2, |b| b / 1e-2),
    ("DecimeterPerMinute", |x| (x / 60.0) * 1e-1, |b| (b * 60.0) / 1e-1),
    ("DecimeterPerSecond", |x| x * 1e-1, |b| b / 1e-1),
    ("FootPerHour", |x| x * 0.3048 / 3600.0, |b| b / 0.3048 * 3600.0),
    ("FootPerMinute", |x| x * 0.3048 / 60.0, |b| b / 0.3048 * 60.0),
    ("FootPerSecond", |x| x * 0.3048, |b| b / 0.3048),
    ("InchPerHour", |x| (x / 3600.0) * 2.54e-2, |b| (b / 2.54e-2) * 3600.0),
    ("InchPerMinute", |x| (x / 60.0) * 2.54e-2, |b| (b / 2.54e-2) * 60.0),
    ("InchPerSecond", |x| x * 2.54e-2, |b| b / 2.54e-2),
    ("KilometerPerHour", |x| (x / 3600.0) * 1e3, |b| (b * 3600.0) / 1e3),
    ("KilometerPerMinute", |x| (x / 60.0) * 1e3, |b| (b * 60.0) / 1e3),
    ("KilometerPerSecond", |x| x * 1e3, |b| b / 1e3),
    ("Knot", |x| x * 0.514444, |b| b / 0.514444),
    ("MeterPerHour", |x| x / 3600.0, |b| b * 3600.0),
    ("MeterPerMinute", |x| x / 60.0, |b| b * 60.0),
    ("MeterPerSecond", |x| x, |b| b),
    ("MicrometerPerMinute", |x| (x / 60.0) * 1e-6, |b| (b * 60.0) / 1e-6),
    ("MicrometerPerSecond", |x| x * 1e-6, |b| b / 1e-6),
    ("MilePerHour", |x| x * 0.44704, |b| b / 0.44704),
    ("MillimeterPerHour", |x| (x / 3600.0) * 1e-3, |b| (b * 3600.0) / 1e-3),
    ("MillimeterPerMinute", |x| (x / 60.0) * 1e-3, |b| (b * 60.0) / 1e-3),
    ("MillimeterPerSecond", |x| x * 1e-3, |b| b / 1e-3),
    ("NanometerPerMinute", |x| (x / 60.0) * 1e-9, |b| (b * 60.0) / 1e-9),
    ("NanometerPerSecond", |x| x * 1e-9, |b| b / 1e-9),
    ("UsSurveyFootPerHour", |x| (x * 1200.0 / 3937.0) / 3600.0, |b| (b * 3937.0 / 1200.0) * 3600.0),
    ("UsSurveyFootPerMinute", |x| (x * 1200.0 / 3937.0) / 60.0, |b| (b * 3937.0 / 1200.0) * 60.0),
    ("UsSurveyFootPerSecond", |x| x * 1200.0 / 3937.0, |b| b * 3937.0 / 1200.0),
    ("YardPerHour", |x| x * 0.9144 / 3600.0, |b| b / 0.9144 * 3600.0),
    ("YardPerMinute", |x| x * 0.9144 / 60.0, |b| b / 0.9144 * 60.0),
    ("YardPerSecond", |x| x * 0.9144, |b| b / 0.9144),
];

/// `convert_temperature` units; the base unit is `Kelvin`. These are affine: each formula pair
/// has UnitsNet's offsets as well as its factors.
static TEMPERATURE: &[Unit] = &[
    ("DegreeCelsius", |x| x + 273.15, |b| b - 273.15),
    ("DegreeDelisle", |x| x * -2.0 / 3.0 + 373.15, |b| (b - 373.15) * -3.0 / 2.0),
    ("DegreeFahrenheit", |x| x * 5.0 / 9.0 + 459.67 * 5.0 / 9.0, |b| (b - 459.67 * 5.0 / 9.0) * 9.0 / 5.0),
    ("DegreeNewton", |x| x * 100.0 / 33.0 + 273.15, |b| (b - 273.15) * 33.0 / 100.0),
    ("DegreeRankine", |x| x * 5.0 / 9.0, |b| b * 9.0 / 5.0),
    ("DegreeReaumur", |x| x * 5.0 / 4.0 + 273.15, |b| (b - 273.15) * 4.0 / 5.0),
    ("DegreeRoemer", |x| x * 40.0 / 21.0 + 273.15 - 7.5 * 40.0 / 21.0, |b| (b - (273.15 - 7.5 * 40.0 / 21.0)) * 21.0 / 40.0),
    ("Kelvin", |x| x, |b| b),
    ("MillidegreeCelsius", |x| x / 1000.0 + 273.15, |b| (b - 273.15) * 1000.0),
    ("SolarTemperature", |x| x * 5778.0, |b| b / 5778.0),
];

/// Cubic foot, in cubic meters.
const CUBIC_FOOT: f64 = 0.0283168;
/// US gallon, in cubic meters.
const US_GALLON: f64 = 0.00378541;
/// Imperial gallon, in cubic meters.
const IMPERIAL_GALLON: f64 = 0.0045460900000018145;
/// US fluid ounce, in cubic meters.
const US_OUNCE: f64 = 2.9573529562537606e-5;
/// Imperial fluid ounce, in cubic meters.
const IMPERIAL_OUNCE: f64 = 2.84130624999629e-5;

/// `convert_volume` units; the base unit is `CubicMeter`. The metric units are prefixed liters,
/// as in UnitsNet (a liter is a thousandth of the base unit, then the prefix applies).
static VOLUME: &[Unit] = &[
    ("AcreFoot", |x| x / 0.000810714, |b| b * 0.000810714),
    ("AuTablespoon", |x| x * 2e-5, |b| b / 2e-5),
    ("BoardFoot", |x| x * 2.3597372158e-3, |b| b / 2.3597372158e-3),
    ("Centiliter", |x| (x / 1e3) * 1e-2, |b| (b * 1e3) / 1e-2),
    ("CubicCentimeter", |x| x / 1e6, |b| b * 1e6),
    ("CubicDecimeter", |x| x / 1e3, |b| b * 1e3),
    ("CubicFoot", |x| x * CUBIC_FOOT, |b| b / CUBIC_FOOT),
    ("CubicHectometer", |x| x * 1e6, |b| b / 1e6),
    ("CubicInch", |x| x * 1.6387 * 1e-5, |b| b / (1.6387 * 1e-5)),
    ("CubicKilometer", |x| x * 1e9, |b| b / 1e9),
    ("CubicMeter", |x| x, |b| b),
    ("CubicMicrometer", |x| x / 1e18, |b| b * 1e18),
    ("CubicMile", |x| x * 4.16818182544058e9, |b| b / 4.16818182544058e9),
    ("CubicMillimeter", |x| x / 1e9, |b| b * 1e9),
    ("CubicYard", |x| x * 0.764554858, |b| b / 0.764554858),
    ("Decaliter", |x| (x / 1e3) * 1e1, |b| (b * 1e3) / 1e1),
    ("DecausGallon", |x| (x * US_GALLON) * 1e1, |b| (b / US_GALLON) / 1e1),
    ("Deciliter", |x| (x / 1e3) * 1e-1, |b| (b * 1e3) / 1e-1),
    ("DeciusGallon", |x| (x * US_GALLON) * 1e-1, |b| (b / US_GALLON) / 1e-1),
    ("HectocubicFoot", |x| (x * CUBIC_FOOT) * 1e2, |b| (b / CUBIC_FOOT) / 1e2),
    ("HectocubicMeter", |x| x * 1e2, |b| b / 1e2),
    ("Hectoliter", |x| (x / 1e3) * 1e2, |b| (b * 1e3) / 1e2),
    ("HectousGallon", |x| (x * US_GALLON) * 1e2, |b| (b / US_GALLON) / 1e2),
    ("ImperialBeerBarrel", |x| x * 0.16365924, |b| b / 0.16365924),
    ("ImperialGallon", |x| x * IMPERIAL_GALLON, |b| b / IMPERIAL_GALLON),
    ("ImperialOunce", |x| x * IMPERIAL_OUNCE, |b| b / IMPERIAL_OUNCE),
    ("ImperialPint", |x| x * 5.6826125e-4, |b| b / 5.6826125e-4),
    ("KilocubicFoot", |x| (x * CUBIC_FOOT) * 1e3, |b| (b / CUBIC_FOOT) / 1e3),
    ("KilocubicMeter", |x| x * 1e3, |b| b / 1e3),
    ("KiloimperialGallon", |x| (x * IMPERIAL_GALLON) * 1e3, |b| (b / IMPERIAL_GALLON) / 1e3),
    ("Kiloliter", |x| (x / 1e3) * 1e3, |b| (b * 1e3) / 1e3),
    ("KilousGallon", |x| (x * US_GALLON) * 1e3, |b| (b / US_GALLON) / 1e3),
    ("Liter", |x| x / 1e3, |b| b * 1e3),
    ("MegacubicFoot", |x| (x * CUBIC_FOOT) * 1e6, |b| (b / CUBIC_FOOT) / 1e6),
    ("MegaimperialGallon", |x| (x * IMPERIAL_GALLON) * 1e6, |b| (b / IMPERIAL_GALLON) / 1e6),
    ("Megaliter", |x| (x / 1e3) * 1e6, |b| (b * 1e3) / 1e6),
    ("MegausGallon", |x| (x * US_GALLON) * 1e6, |b| (b / US_GALLON) / 1e6),
    ("MetricCup", |x| x * 0.00025, |b| b / 0.00025),
    ("MetricTeaspoon", |x| x * 0.5e-5, |b| b / 0.5e-5),
    ("Microliter", |x| (x / 1e3) * 1e-6, |b| (b * 1e3) / 1e-6),
    ("Milliliter", |x| (x / 1e3) * 1e-3, |b| (b * 1e3) / 1e-3),
    ("OilBarrel", |x| x * 0.158987294928, |b| b / 0.158987294928),
    ("UkTablespoon", |x| x * 1.5e-5, |b| b / 1.5e-5),
    ("UsBeerBarrel", |x| x * 0.1173477658, |b| b / 0.1173477658),
    ("UsCustomaryCup", |x| x * 0.0002365882365, |b| b / 0.0002365882365),
    ("UsGallon", |x| x * US_GALLON, |b| b / US_GALLON),
    ("UsLegalCup", |x| x * 0.00024, |b| b / 0.00024),
    ("UsOunce", |x| x * US_OUNCE, |b| b / US_OUNCE),
    ("UsPint", |x| x * 4.73176473e-4, |b| b / 4.73176473e-4),
    ("UsQuart", |x| x * 9.46352946e-4, |b| b / 9.46352946e-4),
    ("UsTablespoon", |x| x * 1.478676478125e-5, |b| b / 1.478676478125e-5),
    ("UsTeaspoon", |x| x * 4.92892159375e-6, |b| b / 4.92892159375e-6),
];

/// The unit of `units` named `name`: the exact name, else the name in another letter case.
fn find<'a>(units: &'a [Unit], name: &str) -> Option<&'a Unit> {
    units.iter().find(|u| u.0 == name).or_else(|| units.iter().find(|u| u.0.eq_ignore_ascii_case(name)))
}

/// `value` in unit `from` converted to unit `to`, by way of the base unit; `None` when the value,
/// the base-unit value or the result is not finite (UnitsNet rejects such quantities).
fn convert_value(value: f64, from: &Unit, to: &Unit) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    if from.0 == to.0 {
        return Some(value);
    }
    let base = (from.1)(value);
    let out = (to.2)(base);
    (base.is_finite() && out.is_finite()).then_some(out)
}

/// The row function of a family: arguments value, from-unit name, to-unit name.
fn convert(units: &[Unit], a: &[ScalarValue]) -> ScalarValue {
    let value = a.first().and_then(sv_f64);
    let from = arg_str(a, 1).and_then(|n| find(units, n));
    let to = arg_str(a, 2).and_then(|n| find(units, n));
    let (Some(value), Some(from), Some(to)) = (value, from, to) else { return s_f64(None) };
    s_f64(convert_value(value, from, to))
}

fn angle_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(ANGLE, a)
}

fn energy_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(ENERGY, a)
}

fn force_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(FORCE, a)
}

fn length_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(LENGTH, a)
}

fn mass_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(MASS, a)
}

fn speed_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(SPEED, a)
}

fn temperature_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(TEMPERATURE, a)
}

fn volume_row(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    convert(VOLUME, a)
}

/// `convert_angle`, `convert_energy`, `convert_force`, `convert_length`, `convert_mass`,
/// `convert_speed`, `convert_temperature`, `convert_volume`: `(value: real, from: string,
/// to: string) -> real`, null for an unknown unit name.
pub(super) fn lower_convert(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let f: RowFn = match name {
        "convert_angle" => angle_row,
        "convert_energy" => energy_row,
        "convert_force" => force_row,
        "convert_length" => length_row,
        "convert_mass" => mass_row,
        "convert_speed" => speed_row,
        "convert_temperature" => temperature_row,
        "convert_volume" => volume_row,
        _ => return Err(PlanError::semantic(format!("function '{name}' is not supported by Kustodian"))),
    };
    let n = args.len();
    let mut it = args.into_iter();
    let (Some(value), Some(from), Some(to), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(PlanError::semantic(format!("function '{name}' expects 3 arguments, got {n}")));
    };
    let exprs = vec![real(value, name)?, string_arg(from, name)?, string_arg(to, name)?];
    Ok(typed(name, KqlType::Real, f, exprs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn call(f: RowFn, value: Option<f64>, from: Option<&str>, to: Option<&str>) -> Option<f64> {
        let args = [
            ScalarValue::Float64(value),
            ScalarValue::Utf8(from.map(str::to_string)),
            ScalarValue::Utf8(to.map(str::to_string)),
        ];
        match f(&args, &mut RowState::default()) {
            ScalarValue::Float64(x) => x,
            other => panic!("not a real: {other:?}"),
        }
    }

    fn conv(f: RowFn, value: f64, from: &str, to: &str) -> Option<f64> {
        call(f, Some(value), Some(from), Some(to))
    }

    /// `x` as Kusto prints a real: 15 significant digits.
    fn printed(x: f64) -> String {
        format!("{x:.14e}")
    }

    /// Each documented example: the printed output agrees, and the value is the one UnitsNet's
    /// arithmetic gives (same operations, so the same bits).
    #[test]
    fn documented_examples() {
        let cases: [(RowFn, &str, &str, &str, f64); 8] = [
            (angle_row, "Degree", "Arcminute", "72", 72.0),
            (energy_row, "Joule", "BritishThermalUnit", "0.00113738054437598", 1.2 / 1055.05585262),
            (force_row, "Newton", "Decanewton", "0.12", 1.2 / 1e1),
            (length_row, "Meter", "Foot", "3.93700787401575", 1.2 / 0.3048),
            (mass_row, "Kilogram", "Pound", "2.64554714621853", 1.2 / 0.45359237),
            (speed_row, "MeterPerSecond", "CentimeterPerHour", "432000", (1.2 * 3600.0) / 1e-2),
            (temperature_row, "Kelvin", "DegreeCelsius", "-271.95", 1.2 - 273.15),
            (volume_row, "CubicMeter", "AcreFoot", "0.0009728568", 1.2 * 0.000810714),
        ];
        for (f, from, to, doc, exact) in cases {
            let got = conv(f, 1.2, from, to).unwrap();
            assert_eq!(printed(got), printed(doc.parse().unwrap()), "{from} -> {to}");
            assert_eq!(got, exact, "{from} -> {to}");
        }
    }

    #[test]
    fn nulls_and_unknown_units() {
        assert_eq!(conv(length_row, 1.0, "Meter", "Furlong"), None);
        assert_eq!(conv(length_row, 1.0, "Parsnip", "Meter"), None);
        assert_eq!(conv(length_row, 1.0, "Kelvin", "Meter"), None);
        assert_eq!(conv(length_row, 1.0, "", "Meter"), None);
        assert_eq!(call(length_row, None, Some("Meter"), Some("Foot")), None);
        assert_eq!(call(length_row, Some(1.0), None, Some("Foot")), None);
        assert_eq!(call(length_row, Some(1.0), Some("Meter"), None), None);
        assert_eq!(conv(length_row, f64::NAN, "Meter", "Foot"), None);
        assert_eq!(conv(length_row, f64::INFINITY, "Meter", "Foot"), None);
        assert_eq!(conv(angle_row, 2.0, "Tilt", "Degree"), None);
        assert_eq!(conv(length_row, 1e300, "Megaparsec", "Meter"), None);
    }

    #[test]
    fn unit_names_ignore_case() {
        assert_eq!(conv(length_row, 1.2, "meter", "FOOT"), conv(length_row, 1.2, "Meter", "Foot"));
        assert_eq!(conv(force_row, 1.0, "kilopond", "newton"), Some(9.80665002864));
    }

    #[test]
    fn same_unit_is_the_value() {
        for units in [ANGLE, ENERGY, FORCE, LENGTH, MASS, SPEED, TEMPERATURE, VOLUME] {
            for u in units {
                assert_eq!(convert_value(0.1, u, u), Some(0.1), "{}", u.0);
            }
        }
    }

    /// The tables are Kusto's documented lists: sorted, distinct even ignoring case, and of the
    /// documented sizes; every unit converts to the base unit and back to (nearly) the value.
    #[test]
    fn tables() {
        let sizes = [
            (ANGLE, 16),
            (ENERGY, 36),
            (FORCE, 15),
            (LENGTH, 36),
            (MASS, 25),
            (SPEED, 32),
            (TEMPERATURE, 10),
            (VOLUME, 52),
        ];
        for (units, n) in sizes {
            assert_eq!(units.len(), n);
            for w in units.windows(2) {
                assert!(w[0].0.to_lowercase() < w[1].0.to_lowercase(), "{} / {}", w[0].0, w[1].0);
            }
            for u in units {
                let x = 0.7;
                let back = (u.2)((u.1)(x));
                assert!((back - x).abs() < 1e-9, "{}: {back}", u.0);
            }
        }
    }

    #[test]
    fn known_values() {
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-12 * b.abs().max(1.0));
        assert!(near(conv(length_row, 1.0, "Mile", "Meter"), 1609.34));
        assert!(near(conv(length_row, 12.0, "Inch", "Foot"), 1.0));
        assert!(near(conv(angle_row, 1.0, "Revolution", "Radian"), 2.0 * PI));
        assert!(near(conv(angle_row, 90.0, "Degree", "Tilt"), 1.0));
        assert!(near(conv(energy_row, 1.0, "KilowattHour", "Joule"), 3.6e6));
        assert!(near(conv(energy_row, 1.0, "WattDay", "WattHour"), 24.0));
        assert!(near(conv(mass_row, 1.0, "Tonne", "Gram"), 1e6));
        assert!(near(conv(mass_row, 1.0, "ShortTon", "Pound"), 2000.0));
        assert!(near(conv(speed_row, 3.6, "KilometerPerHour", "MeterPerSecond"), 1.0));
        assert!(near(conv(volume_row, 1.0, "UsGallon", "Liter"), 3.78541));
        assert!(near(conv(volume_row, 1.0, "Liter", "Milliliter"), 1000.0));
        assert!(near(conv(temperature_row, 100.0, "DegreeCelsius", "DegreeFahrenheit"), 212.0));
        assert!(near(conv(temperature_row, 32.0, "DegreeFahrenheit", "DegreeCelsius"), 0.0));
        assert!(near(conv(temperature_row, 0.0, "DegreeCelsius", "DegreeRankine"), 491.67));
        assert!(near(conv(temperature_row, 100.0, "DegreeCelsius", "DegreeDelisle"), 0.0));
        assert!(near(conv(temperature_row, 100.0, "DegreeCelsius", "DegreeNewton"), 33.0));
        assert!(near(conv(temperature_row, 100.0, "DegreeCelsius", "DegreeReaumur"), 80.0));
        assert!(near(conv(temperature_row, 100.0, "DegreeCelsius", "DegreeRoemer"), 60.0));
        assert!(near(conv(temperature_row, 1.0, "DegreeCelsius", "MillidegreeCelsius"), 1000.0));
    }
}
