//! The alternatives a protocol leaves open within one step ([`agora_core::Context::choose`]):
//! the search takes every one, a walk draws one, a replay takes those a schedule names.
//!
//! The choices of one step (every handler it runs) are written as one number, each choice in
//! as many bits as its count of alternatives needs, the first in the lowest bits: that number
//! is what the search's tree and a schedule keep of them (0: the first alternative of each).

use agora_core::{Chooser, Rng};
use rand::SeedableRng as _;

/// Where the alternatives come from.
enum Source {
    /// The search: the alternatives of `made` again, then the first of each new choice.
    Search,
    /// A walk: each drawn.
    Drawn(Rng),
    /// A replay: read from a step's number, `bits` of it still unread.
    Named { code: u64, bits: u32 },
}

/// The choices of one step.
pub(super) struct Choices {
    /// Each choice made in this run of the step: the alternative taken, of how many.
    made: Vec<(u64, u64)>,
    /// Choices made in this run so far.
    at: usize,
    source: Source,
    /// A replay was asked for an alternative its number does not have.
    bad: bool,
}

/// Bits to write one of `of` alternatives in.
fn bits(of: u64) -> u32 {
    64 - (of - 1).leading_zeros()
}

impl Choices {
    fn new(source: Source) -> Self {
        Choices { made: Vec::new(), at: 0, source, bad: false }
    }

    /// For the search: the first alternative of every choice, then, after each
    /// [`Choices::advance`], the next combination.
    pub(super) fn search() -> Self {
        Choices::new(Source::Search)
    }

    /// For walks: each alternative drawn from a generator seeded with `seed`, the one the
    /// walks draw their steps from ([`Choices::rng`]).
    pub(super) fn drawn(seed: u64) -> Self {
        Choices::new(Source::Drawn(Rng::seed_from_u64(seed)))
    }

    /// The generator of [`Choices::drawn`].
    pub(super) fn rng(&mut self) -> &mut Rng {
        match &mut self.source {
            Source::Drawn(rng) => rng,
            _ => unreachable!("only walks draw, and they draw with Choices::drawn"),
        }
    }

    /// Forgets the choices made, for the next step of a walk.
    pub(super) fn restart(&mut self) {
        self.made.clear();
        self.at = 0;
    }

    /// For a replay: the alternatives `code` names ([`Choices::code`]).
    pub(super) fn named(code: u64) -> Self {
        Choices::new(Source::Named { code, bits: 64 })
    }

    /// Moves the search to the next combination of alternatives of the step just run (the
    /// last choice that has one left takes it, the ones after it start again); false when
    /// every combination was taken. Later choices may differ with earlier ones: the step
    /// runs again and makes them afresh.
    pub(super) fn advance(&mut self) -> bool {
        self.made.truncate(self.at);
        self.at = 0;
        while let Some((taken, of)) = self.made.last_mut() {
            if *taken + 1 < *of {
                *taken += 1;
                return true;
            }
            self.made.pop();
        }
        false
    }

    /// The alternatives taken, as one number; `None` if they take more than 64 bits.
    pub(super) fn code(&self) -> Option<u64> {
        let mut shift = 0;
        let mut code = 0;
        for &(taken, of) in &self.made[..self.at] {
            let b = bits(of);
            if shift + b > 64 {
                return None;
            }
            code |= taken.checked_shl(shift).unwrap_or(0);
            shift += b;
        }
        Some(code)
    }

    /// A replay took exactly the alternatives its number names, and they exist.
    pub(super) fn replayed_whole(&self) -> bool {
        match self.source {
            // Every bit not read is 0.
            Source::Named { code, bits } => !self.bad && code.checked_shr(64 - bits).unwrap_or(0) == 0,
            _ => true,
        }
    }
}

impl Chooser for Choices {
    fn choose(&mut self, of: u64) -> u64 {
        let taken = match &mut self.source {
            Source::Search => match self.made.get(self.at) {
                Some(&(taken, _)) => taken,
                None => 0,
            },
            Source::Drawn(rng) => rand::Rng::random_range(rng, 0..of),
            Source::Named { code, bits: left } => {
                let b = bits(of);
                if b > *left {
                    self.bad = true;
                    0
                } else {
                    let shift = 64 - *left;
                    let taken = (*code >> shift) & (u64::MAX >> (64 - b));
                    *left -= b;
                    if taken >= of {
                        self.bad = true;
                        0
                    } else {
                        taken
                    }
                }
            }
        };
        // The step runs the same way up to here (it is deterministic), so a choice the
        // search made at this place before is the same choice.
        match self.made.get(self.at) {
            Some(&(_, before)) => debug_assert_eq!(before, of, "a step chose differently on the same path"),
            None => self.made.push((taken, of)),
        }
        self.at += 1;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::Choices;
    use agora_core::Chooser as _;

    /// A step that chooses one of 3, then, after alternative 2, one of 2 more.
    fn run(c: &mut Choices) -> (u64, Option<u64>) {
        let a = c.choose(3);
        let b = (a == 2).then(|| c.choose(2));
        (a, b)
    }

    #[test]
    fn the_search_takes_every_combination_once_and_a_replay_takes_each_again() {
        let mut c = Choices::search();
        let mut taken = Vec::new();
        loop {
            let t = run(&mut c);
            taken.push((t, c.code().unwrap()));
            if !c.advance() {
                break;
            }
        }
        let runs: Vec<_> = taken.iter().map(|(t, _)| *t).collect();
        assert_eq!(runs, vec![(0, None), (1, None), (2, Some(0)), (2, Some(1))]);
        for (t, code) in taken {
            let mut r = Choices::named(code);
            assert_eq!(run(&mut r), t, "code {code}");
            assert!(r.replayed_whole());
        }
    }

    #[test]
    fn a_replay_refuses_alternatives_that_do_not_exist_or_are_left_over() {
        // Alternative 3 of 3 (two bits: 0b11) does not exist.
        let mut r = Choices::named(0b11);
        run(&mut r);
        assert!(!r.replayed_whole());
        // Alternative 0 of 3, then bits no choice read.
        let mut r = Choices::named(0b100);
        run(&mut r);
        assert!(!r.replayed_whole());
    }

    #[test]
    fn a_step_without_choices_is_number_zero() {
        let c = Choices::search();
        assert_eq!(c.code(), Some(0));
        assert!(!Choices::search().advance());
    }
}
