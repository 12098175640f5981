package io.idemkey.demo;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 7: three demo nodes as processes on one durable PostgreSQL, clients that retry each key
 * until it is acknowledged with 201, and a chaos thread that SIGKILLs and restarts nodes and stops
 * and starts the database meanwhile. Afterwards the clients' acknowledgements are checked against
 * the payments table: in transactional mode (SPEC §6) no acknowledged payment is missing and no
 * key was paid twice; and against the card processor's charges (SPEC §12): every acknowledged
 * payment has exactly one charge. Each key pays a unique amount, which is how a row (payment or
 * charge) is matched to its key.
 */
class ChaosTest {

  static final int NODES = 3;
  static final int CLIENTS = 12;
  /** Every fifth key is sent by two client threads at once. */
  static final int SHARED_EVERY = 5;
  static final Pattern ID = Pattern.compile("\"id\":(\\d+)");
  static final Pattern AMOUNT = Pattern.compile("\"amount\":(\\d+)");
  static final Duration PROGRESS_EVERY = Duration.ofSeconds(10);

  @TempDir Path dir;

  @Test
  void transactional_nodesKilledAndDatabaseRestarted_noDuplicateAndNoLostAcknowledgement()
      throws Exception {
    Summary summary = run(true, Duration.ofSeconds(60), 10, 100);

    System.out.println(summary);
    assertThat(summary.kills).as("kills").isGreaterThanOrEqualTo(10);
    assertThat(summary.outages).as("database outages").isGreaterThanOrEqualTo(1);
    assertThat(summary.acknowledged).as("acknowledged keys").isGreaterThanOrEqualTo(100);
    assertThat(summary.unexpected).as("unexpected statuses: %s", summary.statuses).isZero();
    assertThat(summary.duplicates).as("keys paid more than once").isZero();
    assertThat(summary.conflictingAcks).as("keys acknowledged with two payment ids").isZero();
    assertThat(summary.lost).as("acknowledged payments missing from the table").isZero();
    // SPEC §12: the charge is a step, with its derived key as the processor's Idempotency-Key.
    assertThat(summary.acknowledgedWithoutOneCharge)
        .as("acknowledged payments without exactly one charge").isZero();
    assertThat(summary.doubleCharges).as("keys charged more than once").isZero();
    assertThat(summary.chargesWithoutPayment).as("settled keys charged but not paid").isZero();
  }

  @Test
  void nonTransactional_sameChaos_runsAndReportsDuplicates() throws Exception {
    Summary summary = run(false, Duration.ofSeconds(30), 1, 1);

    // For comparison only: without one commit for payment and response, a node killed between
    // the two leaves a payment whose key a retry runs again (SPEC §6).
    System.out.println(summary);
    assertThat(summary.requests.get()).as("requests").isPositive();
    assertThat(summary.kills).as("kills").isPositive();
  }

  /** The counts of one run. */
  static final class Summary {
    final boolean transactional;
    final AtomicLong requests = new AtomicLong();
    final AtomicLong connectionErrors = new AtomicLong();
    final Map<Integer, AtomicLong> statuses = new ConcurrentHashMap<>();
    final AtomicLong unexpectedCount = new AtomicLong();
    final AtomicInteger killCount = new AtomicInteger();
    final AtomicInteger outageCount = new AtomicInteger();
    /**
     * For each 201 that made a payment (not a replay), when its request was sent and when the 201
     * came ({@link System#nanoTime()}).
     */
    final Queue<long[]> payments = new ConcurrentLinkedQueue<>();
    long kills;
    long outages;
    long keys;
    long acknowledged;
    long unfinished;
    long unexpected;
    long duplicates;
    long conflictingAcks;
    long lost;
    long rows;
    long rowsWithoutAck;
    long charges;
    long doubleCharges;
    long acknowledgedWithoutOneCharge;
    long chargesWithoutPayment;
    long unfinishedCharged;

    Summary(boolean transactional) {
      this.transactional = transactional;
    }

    void status(int status) {
      statuses.computeIfAbsent(status, s -> new AtomicLong()).incrementAndGet();
    }

    @Override
    public String toString() {
      return "chaos summary (transactional=" + transactional + "): requests=" + requests
          + " kills=" + kills + " databaseOutages=" + outages + " acknowledgedKeys=" + acknowledged
          + " duplicates=" + duplicates + " lostAcknowledgements=" + lost
          + " | keys=" + keys + " unfinished=" + unfinished + " conflictingAcks=" + conflictingAcks
          + " paymentRows=" + rows + " rowsOfUnacknowledgedKeys=" + rowsWithoutAck
          + " charges=" + charges + " doubleCharges=" + doubleCharges
          + " acknowledgedWithoutOneCharge=" + acknowledgedWithoutOneCharge
          + " chargesWithoutPayment=" + chargesWithoutPayment
          + " unfinishedKeysCharged=" + unfinishedCharged
          + " unexpected=" + unexpected + " connectionErrors=" + connectionErrors
          + " statuses=" + new java.util.TreeMap<>(statuses);
    }
  }

  /** One key as the clients send it: the same amount and query on every try. */
  record KeyPlan(String key, long amount, int delayMs) {}

  /**
   * Runs {@code traffic} of chaos, and on past it, for at most as long again, until at least
   * {@code kills} nodes were killed and {@code acknowledged} keys acknowledged: counts, not
   * seconds, so that a loaded machine, where nodes take longer to start, still gets the chaos
   * the assertions ask for.
   */
  Summary run(boolean transactional, Duration traffic, int kills, int acknowledged)
      throws Exception {
    Summary summary = new Summary(transactional);
    progress(summary, "starting PostgreSQL and %d nodes, then %d s of traffic with nodes killed"
        + " and the database restarted", NODES, traffic.toSeconds());
    try (DemoNodes cluster =
        new DemoNodes(dir, "-Didempotency.lease=2s", "-Didempotency.jdbc.connect-timeout=500ms",
            "-Didempotency.transactional=" + transactional)) {
      int[] ports = new int[NODES];
      for (int i = 0; i < NODES; i++) {
        ports[i] = DemoNodes.freePort();
        cluster.launch(ports[i]);
      }
      for (int port : ports) {
        assertThat(cluster.awaitHealthy(port, Duration.ofSeconds(60)))
            .as("node %d healthy", port).isTrue();
      }
      HttpClient client =
          HttpClient.newBuilder()
              .version(HttpClient.Version.HTTP_1_1)
              .connectTimeout(Duration.ofSeconds(2))
              .build();
      String run = UUID.randomUUID().toString().substring(0, 8);
      AtomicInteger nextKey = new AtomicInteger();
      Map<String, KeyPlan> plans = new ConcurrentHashMap<>();
      Map<String, Set<Long>> acks = new ConcurrentHashMap<>();

      long start = System.nanoTime();
      long trafficEnd = start + traffic.toNanos();
      long longestEnd = trafficEnd + traffic.toNanos();
      AtomicBoolean trafficOver = new AtomicBoolean();
      // After the traffic, keys in flight are retried, without chaos, until this deadline.
      long drainEnd = longestEnd + Duration.ofSeconds(25).toNanos();

      ExecutorService clients = Executors.newFixedThreadPool(CLIENTS * 2 + 1);
      CyclicBarrier barrier = new CyclicBarrier(CLIENTS + 1);
      try {
        List<Future<?>> work = new ArrayList<>();
        for (int c = 0; c < CLIENTS; c++) {
          work.add(clients.submit(() -> {
            barrier.await();
            while (!trafficOver.get()) {
              int index = nextKey.getAndIncrement();
              ThreadLocalRandom random = ThreadLocalRandom.current();
              KeyPlan plan = new KeyPlan(
                  "chaos-" + run + "-" + index, index + 1, random.nextInt(301));
              plans.put(plan.key(), plan);
              Future<?> second = null;
              if (index % SHARED_EVERY == 0) {
                second = clients.submit(
                    () -> payUntilAcknowledged(client, ports, plan, drainEnd, summary, acks));
              }
              payUntilAcknowledged(client, ports, plan, drainEnd, summary, acks);
              if (second != null) {
                second.get();
              }
            }
            return null;
          }));
        }
        Future<?> chaos = clients.submit(() -> {
          barrier.await();
          try {
            chaos(cluster, ports, start, trafficEnd, longestEnd,
                () -> summary.killCount.get() >= kills && acks.size() >= acknowledged, summary);
          } finally {
            trafficOver.set(true);
          }
          return null;
        });
        chaos.get(2 * traffic.toSeconds() + 120, TimeUnit.SECONDS);
        progress(summary, "traffic over (%d requests); retrying the keys in flight, for at most"
            + " 25 s", summary.requests.get());
        for (Future<?> each : work) {
          each.get(Math.max(1, (drainEnd - System.nanoTime()) / 1_000_000_000 + 15),
              TimeUnit.SECONDS);
        }
      } finally {
        clients.shutdownNow();
        clients.awaitTermination(30, TimeUnit.SECONDS);
      }
      for (int port : ports) {
        cluster.kill(port);
      }
      progress(summary, "checking %d keys against the payments table", plans.size());
      check(cluster, plans, acks, summary);
    }
    return summary;
  }

  /**
   * Sends the key to random nodes until one acknowledges it with 201: 409 (in progress), 5xx and
   * connection errors are retried after a short pause. Any other status ends the key.
   */
  static void payUntilAcknowledged(
      HttpClient client, int[] ports, KeyPlan plan, long deadline, Summary summary,
      Map<String, Set<Long>> acks) {
    String body = "{\"amount\": " + plan.amount() + ", \"currency\": \"EUR\"}";
    while (System.nanoTime() < deadline && !Thread.currentThread().isInterrupted()) {
      int port = ports[ThreadLocalRandom.current().nextInt(ports.length)];
      summary.requests.incrementAndGet();
      long sent = System.nanoTime();
      HttpResponse<String> response;
      try {
        response = client.send(
            HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + port + "/payments?delayMs=" + plan.delayMs()))
                .timeout(Duration.ofSeconds(15))
                .header("Idempotency-Key", plan.key())
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build(),
            HttpResponse.BodyHandlers.ofString());
      } catch (IOException e) {
        summary.connectionErrors.incrementAndGet();
        pause();
        continue;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
      int status = response.statusCode();
      summary.status(status);
      if (status == 201) {
        Matcher id = ID.matcher(response.body());
        Matcher amount = AMOUNT.matcher(response.body());
        if (!id.find() || !amount.find() || Long.parseLong(amount.group(1)) != plan.amount()) {
          summary.unexpectedCount.incrementAndGet();
          System.err.println("201 with an unexpected body for " + plan + ": " + response.body());
          return;
        }
        acks.computeIfAbsent(plan.key(), k -> ConcurrentHashMap.newKeySet())
            .add(Long.parseLong(id.group(1)));
        if (response.headers().firstValue("Idempotent-Replayed").isEmpty()) {
          summary.payments.add(new long[] {sent, System.nanoTime()});
        }
        return;
      }
      if (status != 409 && status < 500) {
        summary.unexpectedCount.incrementAndGet();
        System.err.println("unexpected " + status + " for " + plan + ": " + response.body());
        return;
      }
      pause();
    }
  }

  static void pause() {
    try {
      Thread.sleep(50 + ThreadLocalRandom.current().nextInt(100));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * Every 1–2 s, SIGKILLs a random node that has started and starts it again at once (without waiting for
   * it); twice, with every node up, stops PostgreSQL for 1–3 s and starts it on the same data
   * directory and port. Nodes that died are restarted. Goes on past {@code trafficEnd} while
   * {@code enough} is false, until {@code longestEnd} at most. Ends with every node healthy.
   */
  static void chaos(DemoNodes cluster, int[] ports, long start, long trafficEnd, long longestEnd,
      BooleanSupplier enough, Summary summary) throws Exception {
    ThreadLocalRandom random = ThreadLocalRandom.current();
    long span = trafficEnd - start;
    long end = trafficEnd;
    long[] outagesAt = {start + span * 35 / 100, start + span * 70 / 100};
    int outagesDone = 0;
    long reported = start;
    while (true) {
      if (System.nanoTime() >= end) {
        if (end == longestEnd || enough.getAsBoolean()) {
          break;
        }
        end = longestEnd; // go on until enough, or for as long again at most
      }
      if (System.nanoTime() - reported >= PROGRESS_EVERY.toNanos()) {
        reported = System.nanoTime();
        progress(summary, "%d s of %d s of traffic: %d requests, %d nodes killed, %d database"
            + " outages", (reported - start) / 1_000_000_000, span / 1_000_000_000,
            summary.requests.get(), summary.killCount.get(), summary.outageCount.get());
      }
      Thread.sleep(Math.min(1000 + random.nextInt(1001),
          Math.max(0, (end - System.nanoTime()) / 1_000_000)));
      if (System.nanoTime() >= end && (end == longestEnd || enough.getAsBoolean())) {
        break;
      }
      for (int port : ports) {
        if (!cluster.alive(port)) {
          cluster.launch(port);
        }
      }
      if (outagesDone < outagesAt.length && System.nanoTime() >= outagesAt[outagesDone]) {
        // A node that starts while the database is down fails its start-up: all up first.
        for (int port : ports) {
          cluster.awaitStarted(port, Duration.ofSeconds(30));
        }
        cluster.stopDatabase();
        summary.outageCount.incrementAndGet();
        Thread.sleep(1000 + random.nextInt(2001));
        cluster.startDatabase();
        outagesDone++;
        continue;
      }
      // A victim is a node that has started, whether or not its pool has reconnected to the
      // database since the last outage (its /health says 503 then).
      List<Integer> up = new ArrayList<>();
      for (int port : ports) {
        if (cluster.answers(port)) {
          up.add(port);
        }
      }
      if (up.isEmpty()) {
        continue;
      }
      int victim = up.get(random.nextInt(up.size()));
      cluster.kill(victim);
      summary.killCount.incrementAndGet();
      cluster.launch(victim);
    }
    for (int port : ports) {
      if (!cluster.awaitHealthy(port, Duration.ofSeconds(30))) {
        cluster.start(port);
      }
    }
  }

  /**
   * A line of progress on the console (the demo's tests print to it), so that a run of minutes
   * is not minutes of silence.
   */
  static void progress(Summary summary, String format, Object... args) {
    System.out.println("ChaosTest (transactional=" + summary.transactional + "): "
        + String.format(Locale.ROOT, format, args));
  }

  /** Matches the acknowledgements against the payments table by amount. */
  static void check(
      DemoNodes cluster, Map<String, KeyPlan> plans, Map<String, Set<Long>> acks, Summary summary)
      throws Exception {
    Map<Long, List<Long>> idsByAmount = new HashMap<>();
    Map<Long, Long> amountById = new HashMap<>();
    try (Connection connection = cluster.connect();
        Statement statement = connection.createStatement();
        ResultSet rows = statement.executeQuery("SELECT id, amount FROM payments")) {
      while (rows.next()) {
        idsByAmount.computeIfAbsent(rows.getLong(2), a -> new ArrayList<>()).add(rows.getLong(1));
        amountById.put(rows.getLong(1), rows.getLong(2));
        summary.rows++;
      }
    }
    Map<Long, Long> chargesByAmount = new HashMap<>();
    try (Connection connection = cluster.connect();
        Statement statement = connection.createStatement();
        ResultSet rows = statement.executeQuery("SELECT amount, count(*) FROM charges GROUP BY 1")) {
      while (rows.next()) {
        chargesByAmount.put(rows.getLong(1), rows.getLong(2));
        summary.charges += rows.getLong(2);
      }
    }
    summary.kills = summary.killCount.get();
    summary.outages = summary.outageCount.get();
    summary.unexpected = summary.unexpectedCount.get();
    summary.keys = plans.size();
    for (KeyPlan plan : plans.values()) {
      List<Long> paid = idsByAmount.getOrDefault(plan.amount(), List.of());
      if (paid.size() > 1) {
        summary.duplicates += paid.size() - 1;
        System.err.println("paid " + paid.size() + " times: " + plan + " ids " + paid);
      }
      long charged = chargesByAmount.getOrDefault(plan.amount(), 0L);
      if (charged > 1) {
        summary.doubleCharges += charged - 1;
        System.err.println("charged " + charged + " times: " + plan);
      }
      Set<Long> acked = acks.get(plan.key());
      if (acked == null) {
        // Never settled (the drain ran out): its charge may stand without a payment.
        summary.unfinished++;
        summary.rowsWithoutAck += paid.size();
        summary.unfinishedCharged += charged;
        continue;
      }
      summary.acknowledged++;
      if (charged != 1) {
        summary.acknowledgedWithoutOneCharge++;
        System.err.println("acknowledged with " + charged + " charges: " + plan);
      }
      if (charged > 0 && paid.isEmpty()) {
        summary.chargesWithoutPayment++;
      }
      if (acked.size() > 1) {
        summary.conflictingAcks++;
        System.err.println("acknowledged with " + acked + ": " + plan);
      }
      for (long id : acked) {
        Long amount = amountById.get(id);
        if (amount == null || amount != plan.amount()) {
          summary.lost++;
          System.err.println("acknowledged payment " + id + " missing: " + plan);
        }
      }
    }
  }
}
