//! From a requested capacity range to the size of a volume.
//!
//! Sizes are whole MiB ([`rds_client::SIZE_GRANULARITY`]), rounded up, and at
//! least [`MIN_VOLUME_SIZE`] when the range allows it (an XFS filesystem needs
//! 300 MiB, and smaller volumes are rarely what anyone meant). An unbounded
//! request gets [`DEFAULT_VOLUME_SIZE`].

use csi_proto::v1::CapacityRange;
use rds_client::SIZE_GRANULARITY;

use crate::error::{DriverError, Result};

/// Smallest volume made, unless `limit_bytes` forbids it.
pub const MIN_VOLUME_SIZE: u64 = 1 << 30;

/// Size of a volume whose request gives no capacity.
pub const DEFAULT_VOLUME_SIZE: u64 = MIN_VOLUME_SIZE;

/// The largest volume the driver asks for: [`routeros::MAX_SIZE`], the
/// largest whole MiB in RouterOS's signed 64-bit numbers (which is also the
/// largest the CSI API's `int64` can report). Anything larger is refused with
/// OUT_OF_RANGE before the RDS is asked.
pub const MAX_VOLUME_SIZE: u64 = routeros::MAX_SIZE;

/// The bounds of a request, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// At least this many bytes (0: no lower bound).
    pub required: u64,
    /// At most this many bytes (`None`: no upper bound).
    pub limit: Option<u64>,
}

impl Bounds {
    /// Checks a capacity range: no negative numbers, `required <= limit`.
    pub fn of(range: Option<&CapacityRange>) -> Result<Self> {
        let Some(range) = range else {
            return Ok(Self {
                required: 0,
                limit: None,
            });
        };
        let (Ok(required), Ok(limit)) = (
            u64::try_from(range.required_bytes),
            u64::try_from(range.limit_bytes),
        ) else {
            return Err(DriverError::InvalidArgument(format!(
                "capacity range has a negative size (required {}, limit {})",
                range.required_bytes, range.limit_bytes
            )));
        };
        let limit = (limit > 0).then_some(limit);
        if let Some(limit) = limit
            && required > limit
        {
            return Err(DriverError::InvalidArgument(format!(
                "capacity range asks for at least {required} bytes but at most {limit}"
            )));
        }
        Ok(Self { required, limit })
    }

    /// Whether an existing volume of `size` bytes satisfies the bounds.
    pub fn admits(&self, size: u64) -> bool {
        size >= self.required && self.limit.is_none_or(|l| size <= l)
    }

    /// The size to make a new volume.
    pub fn new_volume_size(&self) -> Result<u64> {
        let wanted = if self.required == 0 {
            DEFAULT_VOLUME_SIZE
        } else {
            self.required.max(MIN_VOLUME_SIZE)
        };
        let rounded = round_up(wanted)?;
        match self.limit {
            Some(limit) if rounded > limit => {
                // The minimum does not fit under the limit: the largest whole
                // MiB that does, if it still meets the request.
                let fits = limit / SIZE_GRANULARITY * SIZE_GRANULARITY;
                if fits >= self.required.max(1) {
                    Ok(fits)
                } else {
                    Err(DriverError::OutOfRange(format!(
                        "no size in whole MiB lies between {} and {limit} bytes",
                        self.required
                    )))
                }
            }
            _ => Ok(rounded),
        }
    }

    /// The size to grow a volume to, for ControllerExpandVolume.
    pub fn expanded_size(&self) -> Result<u64> {
        if self.required == 0 {
            return Err(DriverError::InvalidArgument(
                "capacity range of an expansion needs required_bytes".into(),
            ));
        }
        let rounded = round_up(self.required)?;
        match self.limit {
            Some(limit) if rounded > limit => Err(DriverError::OutOfRange(format!(
                "{} bytes rounded up to whole MiB is {rounded}, above the limit of {limit}",
                self.required
            ))),
            _ => Ok(rounded),
        }
    }
}

fn round_up(bytes: u64) -> Result<u64> {
    rds_client::round_up_size(bytes)
        .filter(|&s| s <= MAX_VOLUME_SIZE)
        .ok_or_else(|| {
            DriverError::OutOfRange(format!("{bytes} bytes is more than a volume can hold"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn bounds(required: i64, limit: i64) -> Result<Bounds> {
        Bounds::of(Some(&CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        }))
    }

    #[test]
    fn new_volume_sizes() {
        let size = |r, l| bounds(r, l).and_then(|b| b.new_volume_size());
        assert_eq!(
            Bounds::of(None).unwrap().new_volume_size().unwrap(),
            DEFAULT_VOLUME_SIZE
        );
        assert_eq!(size(0, 0).unwrap(), DEFAULT_VOLUME_SIZE);
        assert_eq!(size(10 * GIB as i64, 0).unwrap(), 10 * GIB);
        // 1.5 GiB stays 1.5 GiB; an odd size rounds up to the next MiB.
        assert_eq!(size(3 * GIB as i64 / 2, 0).unwrap(), 3 * GIB / 2);
        assert_eq!(size(GIB as i64 + 1, 0).unwrap(), GIB + MIB);
        // Small requests get the minimum...
        assert_eq!(size(100 * MIB as i64, 0).unwrap(), GIB);
        // ...unless the limit forbids it: then the largest size under it.
        assert_eq!(
            size(100 * MIB as i64, (200 * MIB + 5) as i64).unwrap(),
            200 * MIB
        );
        assert_eq!(size(0, (200 * MIB) as i64).unwrap(), 200 * MIB);
        // A range with no whole MiB in it cannot be met.
        assert!(matches!(
            size(MIB as i64 + 1, MIB as i64 + 100),
            Err(DriverError::OutOfRange(_))
        ));
        assert!(matches!(size(i64::MAX, 0), Err(DriverError::OutOfRange(_))));
        assert_eq!(size(MAX_VOLUME_SIZE as i64, 0).unwrap(), MAX_VOLUME_SIZE);
        assert!(matches!(
            size(MAX_VOLUME_SIZE as i64 + 1, 0),
            Err(DriverError::OutOfRange(_))
        ));
        assert_eq!(MAX_VOLUME_SIZE % SIZE_GRANULARITY, 0);
        assert!(i64::try_from(MAX_VOLUME_SIZE).is_ok());
    }

    #[test]
    fn invalid_ranges() {
        assert!(matches!(
            bounds(-1, 0),
            Err(DriverError::InvalidArgument(_))
        ));
        assert!(matches!(
            bounds(0, -1),
            Err(DriverError::InvalidArgument(_))
        ));
        assert!(matches!(
            bounds(10, 5),
            Err(DriverError::InvalidArgument(_))
        ));
    }

    #[test]
    fn existing_volumes_and_expansion() {
        let b = bounds(GIB as i64, 2 * GIB as i64).unwrap();
        assert!(b.admits(GIB) && b.admits(2 * GIB));
        assert!(!b.admits(GIB - 1) && !b.admits(2 * GIB + 1));
        assert!(Bounds::of(None).unwrap().admits(1));
        assert_eq!(
            bounds(GIB as i64 + 1, 0).unwrap().expanded_size().unwrap(),
            GIB + MIB
        );
        assert!(matches!(
            bounds(GIB as i64 + 1, GIB as i64 + 2)
                .unwrap()
                .expanded_size(),
            Err(DriverError::OutOfRange(_))
        ));
        assert!(matches!(
            bounds(0, 0).unwrap().expanded_size(),
            Err(DriverError::InvalidArgument(_))
        ));
    }
}
