//! The 50 US states: postal code, name, place on a tile map, House seats, and the default
//! region.
//!
//! Seats are the 2020 apportionment (U.S. Census Bureau, *Apportionment Population and Number
//! of Representatives by State: 2020 Census*); a synthetic roll spreads its voters over the
//! states in proportion to them. The tile map puts each state in one square near its usual
//! place, 12 columns by 8 rows. The default regions follow the Census Bureau's four regions,
//! with the South split into its South Atlantic division and the rest.

/// One state.
#[derive(Clone, Copy, Debug)]
pub struct State {
    /// The two-letter postal code ("CA").
    pub code: &'static str,
    /// The full name ("California").
    pub name: &'static str,
    /// Its column on the tile map, `0..12`.
    pub col: u8,
    /// Its row on the tile map, `0..8`.
    pub row: u8,
    /// Its House seats (2020 apportionment).
    pub seats: u32,
    /// Index into [`DEFAULT_REGIONS`].
    pub region: u8,
}

/// The default regions' names; a state's `region` indexes this.
pub const DEFAULT_REGIONS: [&str; 5] = ["west", "midwest", "south-central", "south-atlantic", "northeast"];

const fn s(code: &'static str, name: &'static str, col: u8, row: u8, seats: u32, region: u8) -> State {
    State { code, name, col, row, seats, region }
}

/// The 50 states; a state's number in ballots, receipts and results is its index here.
pub const STATES: [State; 50] = [
    s("AK", "Alaska", 0, 0, 1, 0),
    s("ME", "Maine", 11, 0, 2, 4),
    s("WI", "Wisconsin", 6, 1, 8, 1),
    s("VT", "Vermont", 10, 1, 1, 4),
    s("NH", "New Hampshire", 11, 1, 2, 4),
    s("WA", "Washington", 1, 2, 10, 0),
    s("ID", "Idaho", 2, 2, 2, 0),
    s("MT", "Montana", 3, 2, 2, 0),
    s("ND", "North Dakota", 4, 2, 1, 1),
    s("MN", "Minnesota", 5, 2, 8, 1),
    s("IL", "Illinois", 6, 2, 17, 1),
    s("MI", "Michigan", 7, 2, 13, 1),
    s("NY", "New York", 9, 2, 26, 4),
    s("MA", "Massachusetts", 10, 2, 9, 4),
    s("OR", "Oregon", 1, 3, 6, 0),
    s("NV", "Nevada", 2, 3, 4, 0),
    s("WY", "Wyoming", 3, 3, 1, 0),
    s("SD", "South Dakota", 4, 3, 1, 1),
    s("IA", "Iowa", 5, 3, 4, 1),
    s("IN", "Indiana", 6, 3, 9, 1),
    s("OH", "Ohio", 7, 3, 15, 1),
    s("PA", "Pennsylvania", 8, 3, 17, 4),
    s("NJ", "New Jersey", 9, 3, 12, 4),
    s("CT", "Connecticut", 10, 3, 5, 4),
    s("RI", "Rhode Island", 11, 3, 2, 4),
    s("CA", "California", 1, 4, 52, 0),
    s("UT", "Utah", 2, 4, 4, 0),
    s("CO", "Colorado", 3, 4, 8, 0),
    s("NE", "Nebraska", 4, 4, 3, 1),
    s("MO", "Missouri", 5, 4, 8, 1),
    s("KY", "Kentucky", 6, 4, 6, 2),
    s("WV", "West Virginia", 7, 4, 2, 3),
    s("VA", "Virginia", 8, 4, 11, 3),
    s("MD", "Maryland", 9, 4, 8, 3),
    s("DE", "Delaware", 10, 4, 1, 3),
    s("AZ", "Arizona", 2, 5, 9, 0),
    s("NM", "New Mexico", 3, 5, 3, 0),
    s("KS", "Kansas", 4, 5, 4, 1),
    s("AR", "Arkansas", 5, 5, 4, 2),
    s("TN", "Tennessee", 6, 5, 9, 2),
    s("NC", "North Carolina", 7, 5, 14, 3),
    s("SC", "South Carolina", 8, 5, 7, 3),
    s("OK", "Oklahoma", 4, 6, 5, 2),
    s("LA", "Louisiana", 5, 6, 6, 2),
    s("MS", "Mississippi", 6, 6, 4, 2),
    s("AL", "Alabama", 7, 6, 7, 2),
    s("GA", "Georgia", 8, 6, 14, 3),
    s("HI", "Hawaii", 0, 7, 2, 0),
    s("TX", "Texas", 4, 7, 38, 2),
    s("FL", "Florida", 9, 7, 28, 3),
];

/// The sum of the seats: 435.
pub const SEATS_TOTAL: u64 = 435;

/// The index of a state by its postal code.
pub fn by_code(code: &str) -> Option<usize> {
    STATES.iter().position(|s| s.code.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_states_435_seats_one_tile_each() {
        assert_eq!(STATES.iter().map(|s| s.seats as u64).sum::<u64>(), SEATS_TOTAL);
        let mut tiles: Vec<(u8, u8)> = STATES.iter().map(|s| (s.col, s.row)).collect();
        tiles.sort();
        tiles.dedup();
        assert_eq!(tiles.len(), 50);
        let per_region: Vec<usize> =
            (0..5).map(|r| STATES.iter().filter(|s| s.region == r).count()).collect();
        assert_eq!(per_region, [13, 12, 8, 8, 9]);
    }
}
