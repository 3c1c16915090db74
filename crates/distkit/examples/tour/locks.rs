use distkit::lock::{LockError, LockOptions, Mutex, RwLock};
use distkit::{DistkitRedisKey, RedisConnection};

pub async fn run(conn: &RedisConnection, run: &str) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== locks: a distributed Mutex with fencing tokens");
    let key = DistkitRedisKey::try_from(format!("{run}_invoice_42"))?;
    let mutex = Mutex::new(LockOptions::new(key.clone(), conn.clone()));

    let guard = mutex.lock().await?;
    println!(
        "  locked {key} on attempt {}: fencing token {} ({:?})",
        guard.acquired_on_attempt(),
        guard.fencing_token(),
        guard.state()
    );
    // A second acquisition, even through the same Mutex, is a different owner.
    match mutex.try_lock().await {
        Err(LockError::WouldBlock { .. }) => println!("  try_lock while held -> would block"),
        Ok(_) => println!("  try_lock while held -> acquired (unexpected)"),
        Err(error) => return Err(error.into()),
    }
    println!("  release -> {:?}", guard.release().await?);

    let next = mutex.lock().await?;
    println!(
        "  locked again: fencing token {} (always larger)",
        next.fencing_token()
    );
    next.release().await?;

    println!("\n== locks: a writer-preferring RwLock");
    let rw = RwLock::new(LockOptions::new(
        DistkitRedisKey::try_from(format!("{run}_config"))?,
        conn.clone(),
    ));
    let a = rw.read().await?;
    let b = rw.read().await?;
    println!(
        "  two readers at once (tokens {} and {})",
        a.fencing_token(),
        b.fencing_token()
    );
    match rw.try_write().await {
        Err(LockError::WouldBlock { .. }) => println!("  try_write while read -> would block"),
        other => println!("  try_write while read -> {other:?}"),
    }
    a.release().await?;
    b.release().await?;
    let writer = rw.write().await?;
    println!("  writer in: fencing token {}", writer.fencing_token());
    writer.release().await?;
    Ok(())
}
