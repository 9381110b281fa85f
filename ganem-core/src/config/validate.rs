//! Range checks for settings, one function per kind of setting, so that every experiment's
//! profile and command-line overrides are judged by the same rules before any work starts.
//! Each message names the setting, its value and the allowed range.

/// A violated rule, as the message shown to the user.
pub type Violation = String;

/// A rate or scale: finite and > 0.
pub fn positive(name: &str, value: f64) -> Result<(), Violation> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{name} = {value} is out of range: it must be a finite number > 0"
        ))
    }
}

/// A weight or bound where 0 means "off": finite and >= 0.
pub fn non_negative(name: &str, value: f64) -> Result<(), Violation> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{name} = {value} is out of range: it must be a finite number >= 0 (0 = off)"
        ))
    }
}

/// A decay factor: in (0, 1].
pub fn decay(name: &str, value: f64) -> Result<(), Violation> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(format!(
            "{name} = {value} is out of range: it must be in (0, 1]"
        ))
    }
}

/// A moment coefficient such as Adam's betas: in [0, 1).
pub fn unit_interval_open(name: &str, value: f64) -> Result<(), Violation> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{name} = {value} is out of range: it must be in [0, 1)"
        ))
    }
}

/// A count of things to do (iterations, updates, images per batch): at least 1.
pub fn count(name: &str, value: usize) -> Result<(), Violation> {
    if value >= 1 {
        Ok(())
    } else {
        Err(format!(
            "{name} = {value} is out of range: it must be at least 1"
        ))
    }
}

/// A count no larger than what is there, where 0 means "all": in [0, available].
pub fn subset(name: &str, value: usize, available: usize) -> Result<(), Violation> {
    if value <= available {
        Ok(())
    } else {
        Err(format!(
            "{name} = {value} is out of range: only {available} are available (0 = all)"
        ))
    }
}

/// A list of sizes that must each be at least 1 and not be empty.
pub fn sizes(name: &str, values: &[usize]) -> Result<(), Violation> {
    if values.is_empty() || values.contains(&0) {
        Err(format!(
            "{name} = {values:?} is out of range: it needs at least one size, each at least 1"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_accepts_its_range_and_names_setting_value_and_range() {
        assert!(positive("lr", 2e-4).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = positive("optimizer.lr", bad).unwrap_err();
            assert!(e.contains("optimizer.lr") && e.contains("> 0"), "{e}");
        }
        assert!(non_negative("w", 0.0).is_ok() && non_negative("w", 2.0).is_ok());
        assert!(non_negative("w", -0.5).is_err() && non_negative("w", f64::NAN).is_err());
        assert!(decay("d", 1.0).is_ok() && decay("d", 0.98).is_ok());
        for bad in [0.0, 1.01, -0.5, f64::NAN] {
            assert!(decay("em.lr_decay", bad).unwrap_err().contains("(0, 1]"));
        }
        assert!(unit_interval_open("b", 0.0).is_ok() && unit_interval_open("b", 0.999).is_ok());
        assert!(unit_interval_open("b", 1.0).unwrap_err().contains("[0, 1)"));
        assert!(count("n", 1).is_ok());
        assert!(count("em.iterations", 0)
            .unwrap_err()
            .contains("em.iterations = 0"));
        assert!(subset("s", 0, 10).is_ok() && subset("s", 10, 10).is_ok());
        assert!(subset("data.train_subset", 11, 10)
            .unwrap_err()
            .contains("only 10"));
        assert!(sizes("c", &[64, 128]).is_ok());
        assert!(sizes("c", &[]).is_err() && sizes("c", &[64, 0]).is_err());
    }
}
