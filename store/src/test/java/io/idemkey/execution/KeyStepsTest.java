package io.idemkey.execution;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.MutableClock;
import io.idemkey.store.StoreBuilder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The step API on a memory store, its time driven by a {@link MutableClock}. */
class KeyStepsTest {

  static final Duration LEASE = Duration.ofSeconds(30);

  final MutableClock clock = MutableClock.atEpochDay();
  final IdempotencyStore store =
      StoreBuilder.memory().clock(clock).lease(LEASE).purgeInterval(Duration.ZERO).build();
  final IdempotencyKey key = new IdempotencyKey("principal:alice", UUID.randomUUID().toString());
  final List<Boolean> outcomes = new ArrayList<>();
  final AtomicInteger calls = new AtomicInteger();

  @AfterEach
  void close() {
    store.close();
  }

  static Fingerprint fingerprint(String body) {
    byte[] digest = new byte[Fingerprint.LENGTH];
    Arrays.fill(digest, (byte) body.hashCode());
    return new Fingerprint(digest);
  }

  KeySteps run(Fingerprint fingerprint) {
    ClaimResult claim = store.claim(key, fingerprint);
    assertThat(claim).isInstanceOf(ClaimResult.Held.class);
    return KeySteps.holding(store.steps(), key, fingerprint, ((ClaimResult.Held) claim).token(),
        (replayed, started) -> outcomes.add(replayed));
  }

  String charge(String derivedKey) {
    return "ch_" + calls.incrementAndGet() + "_" + derivedKey;
  }

  @Test
  void run_secondRunOfTheRequest_getsTheStoredResultWithoutCalling() {
    KeySteps first = run(fingerprint("a"));
    String charged = first.runText("charge", this::charge);
    clock.advance(LEASE.plusSeconds(1)); // the first run's node died; its lease ran out

    String resumed = run(fingerprint("a")).runText("charge", this::charge);

    assertThat(resumed).isEqualTo(charged);
    assertThat(calls).hasValue(1);
    assertThat(outcomes).containsExactly(false, true); // run, then replayed
  }

  @Test
  void run_leaseTakenOverDuringTheCall_throwsLeaseLostAndTheNewHolderCallsItself() {
    KeySteps stale = run(fingerprint("a"));

    assertThatThrownBy(() -> stale.runText("charge", derivedKey -> {
      clock.advance(LEASE.plusSeconds(1));
      run(fingerprint("a")); // another node takes the key over while the call is out
      return charge(derivedKey);
    })).isInstanceOf(LeaseLostException.class).hasMessageContaining("charge");

    clock.advance(LEASE.plusSeconds(1));
    assertThat(run(fingerprint("a")).runText("charge", this::charge)).startsWith("ch_2_");
  }

  @Test
  void run_callFails_storesNothingAndTheRetryCallsAgain() {
    KeySteps first = run(fingerprint("a"));
    assertThatThrownBy(() -> first.runText("charge", derivedKey -> {
      throw new java.io.IOException("processor unreachable");
    })).isInstanceOf(java.io.IOException.class);
    clock.advance(LEASE.plusSeconds(1));

    assertThat(run(fingerprint("a")).runText("charge", this::charge)).startsWith("ch_1_");
  }

  @Test
  void run_sameNameTwiceInOneRequest_isRefused() {
    KeySteps steps = run(fingerprint("a"));
    steps.runText("charge", this::charge);

    assertThatThrownBy(() -> steps.runText("charge", this::charge))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("unique");
    assertThatThrownBy(() -> steps.runText("", this::charge))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void run_bytesAndCustomCodec_roundTrip() {
    KeySteps first = run(fingerprint("a"));
    first.run("raw", Codec.bytes(), derivedKey -> new byte[] {1, 2, 3});
    first.run("number", longs(), derivedKey -> 42L);
    clock.advance(LEASE.plusSeconds(1));

    KeySteps second = run(fingerprint("a"));
    assertThat(second.run("raw", Codec.bytes(), derivedKey -> new byte[0]))
        .containsExactly(1, 2, 3);
    assertThat(second.run("number", longs(), derivedKey -> 0L)).isEqualTo(42L);
  }

  static Codec<Long> longs() {
    return new Codec<>() {
      @Override
      public byte[] encode(Long value) {
        return value.toString().getBytes(StandardCharsets.US_ASCII);
      }

      @Override
      public Long decode(byte[] bytes) {
        return Long.valueOf(new String(bytes, StandardCharsets.US_ASCII));
      }
    };
  }

  @Test
  void derivedKey_stableAcrossRuns_differentPerStepAndRequest() {
    String first = run(fingerprint("a")).derivedKey("charge");
    clock.advance(LEASE.plusSeconds(1));
    KeySteps retry = run(fingerprint("a"));

    assertThat(retry.derivedKey("charge")).isEqualTo(first).hasSize(43).matches("[A-Za-z0-9_-]+");
    assertThat(retry.derivedKey("refund")).isNotEqualTo(first);
    clock.advance(LEASE.plusSeconds(1));
    assertThat(run(fingerprint("b")).derivedKey("charge")).isNotEqualTo(first);
  }

  @Test
  void storeWithoutSteps_callsEveryTimeWithTheSameDerivedKey() {
    long token = ((ClaimResult.Held) store.claim(key, fingerprint("a"))).token();
    KeySteps steps =
        KeySteps.holding(null, key, fingerprint("a"), token, (replayed, s) -> outcomes.add(replayed));

    assertThat(steps.runText("charge", this::charge)).startsWith("ch_1_");
    assertThat(outcomes).isEmpty();
  }

  @Test
  void direct_requestWithoutKey_callsEveryTimeWithARandomDerivedKey() {
    Steps direct = KeySteps.direct();

    assertThat(direct.runText("charge", this::charge)).startsWith("ch_1_");
    assertThat(KeySteps.direct().runText("charge", this::charge)).startsWith("ch_2_");
    assertThat(direct.derivedKey("x")).isNotEqualTo(direct.derivedKey("x"));
  }
}
