use distkit::{CounterComparator, DistkitRedisKey};

pub fn run() {
    println!("\n== keys: every Redis key is built from validated segments");
    for candidate in ["page_views", "user:42", "two words", ""] {
        match DistkitRedisKey::try_from(candidate) {
            Ok(key) => println!("  {candidate:?} -> accepted as {key}"),
            Err(error) => println!("  {candidate:?} -> rejected: {error}"),
        }
    }
    println!("\n== comparators: conditions for conditional writes");
    for comparator in [CounterComparator::Lt(10), CounterComparator::Eq(3)] {
        println!("  is 5 {comparator}? {}", comparator.matches(5));
    }
}
