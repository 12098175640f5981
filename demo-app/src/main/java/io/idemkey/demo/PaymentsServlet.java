package io.idemkey.demo;

import io.idemkey.filter.Steps;
import io.idemkey.store.StoreUnavailableException;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The payments API: {@code POST /payments} charges the card processor in a step, then inserts a
 * payment; {@code GET /payments/{id}} reads one. The same servlet answers {@code POST
 * /bare/payments}, outside the filter (its charge is made on every call, with a random key). Test
 * hooks: {@code delayMs=N} sleeps after the charge and before the insert; {@code
 * processorDelayMs=N} asks the processor to sleep after its charge and before its answer; {@code
 * fail=true} answers 500 before charging. Thread-safe.
 */
final class PaymentsServlet extends DemoServlet {

  /**
   * The 503 when the processor certainly did not charge the card in this request. An earlier
   * request with the same key may have (one whose outcome was unknown): its retry finds that
   * charge, so the advice holds either way.
   */
  static final String NOT_CHARGED =
      "the payment could not be charged now (this request did not charge the card); retry later";
  /**
   * The 503 when the processor may have charged the card ({@link ProcessorClient.OutcomeUnknown}).
   */
  static final String OUTCOME_UNKNOWN =
      "whether the card was charged is unknown (the card processor gave no clear answer in time);"
          + " retry with the same Idempotency-Key: the payment is then made once and the card"
          + " charged at most once";
  /**
   * {@link #OUTCOME_UNKNOWN} for a request that holds no key ({@code /bare/payments}, or the store
   * away with {@code on-store-failure=fail-open}): its charge has a new key each time.
   */
  static final String OUTCOME_UNKNOWN_WITHOUT_KEY =
      "whether the card was charged is unknown (the card processor gave no clear answer in time);"
          + " this request holds no Idempotency-Key: a retry may charge it again";
  /**
   * The 503 when the card was charged and the payment could not be recorded: the charge's result
   * could not be stored, or the payment not inserted.
   */
  static final String CHARGED_NOT_RECORDED =
      "the card was charged but the payment could not be recorded now; retry with the same"
          + " Idempotency-Key: the payment is then made without charging the card again";
  /** {@link #CHARGED_NOT_RECORDED} for a request that holds no key. */
  static final String CHARGED_NOT_RECORDED_WITHOUT_KEY =
      "the card was charged but the payment could not be recorded now; this request holds no"
          + " Idempotency-Key: a retry charges it again";

  private final DatabaseCalls database;
  private final AtomicLong executions;
  private final ProcessorClient processor;
  private final boolean throwHook;

  /**
   * @param throwHook whether the test hook {@code throw=true} makes the handler throw (on {@code
   *     /bare/payments} only, where no idempotency key is spent on it)
   */
  PaymentsServlet(DatabaseCalls database, AtomicLong executions, ProcessorClient processor,
      boolean throwHook) {
    super("GET", "POST");
    this.database = database;
    this.executions = executions;
    this.processor = processor;
    this.throwHook = throwHook;
  }

  @Override
  protected void doPost(HttpServletRequest request, HttpServletResponse response)
      throws IOException {
    executions.incrementAndGet();
    long delayMs = millis(request.getParameter("delayMs"));
    long processorDelayMs = millis(request.getParameter("processorDelayMs"));
    if (delayMs < 0 || processorDelayMs < 0) {
      problem(response, 400, (delayMs < 0 ? "delayMs" : "processorDelayMs")
          + " must be a whole number of milliseconds");
      return;
    }
    if (throwHook && "true".equals(request.getParameter("throw"))) {
      throw new IllegalStateException("the handler threw on request (throw=true)");
    }
    if ("true".equals(request.getParameter("fail"))) {
      problem(response, 500, "failed on request (fail=true); nothing was inserted");
      return;
    }
    String body = new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    PaymentRequest.Parsed parsed = PaymentRequest.parse(body);
    if (parsed instanceof PaymentRequest.Invalid invalid) {
      problem(response, 400, invalid.reason());
      return;
    }
    PaymentRequest payment = ((PaymentRequest.Valid) parsed).request();
    // SPEC §12: the charge is a step. Its result is stored as soon as the processor answers, in
    // its own commit; a retry of this request (after a crash, a 5xx or a rollback) gets it back
    // without calling again. The step's derived key is the processor's Idempotency-Key, so a
    // crash after the processor answered and before the result was stored is covered too.
    // Every 503 below releases the key (a 5xx is not stored): a retry with it runs again, and
    // the processor, deduplicating by the step's derived key, charges the card at most once.
    String chargeId;
    AtomicBoolean charged = new AtomicBoolean();
    try {
      chargeId = Steps.of(request).runText("charge", stepKey -> {
        String id = processor.charge(request, payment, stepKey, processorDelayMs);
        charged.set(true);
        return id;
      });
    } catch (ProcessorClient.ChargeFailed e) {
      problem(response, 503, !(e instanceof ProcessorClient.OutcomeUnknown) ? NOT_CHARGED
          : request.getAttribute(Steps.ATTRIBUTE) != null ? OUTCOME_UNKNOWN
          : OUTCOME_UNKNOWN_WITHOUT_KEY);
      return;
    } catch (StoreUnavailableException e) {
      // Before the call this request charged nothing; after it, the charge happened but its
      // result may not be stored.
      problem(response, 503, charged.get() ? CHARGED_NOT_RECORDED : NOT_CHARGED);
      return;
    }
    if (delayMs > 0) {
      try {
        Thread.sleep(delayMs);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    long id;
    try {
      id = database.run(connection -> {
        try (PreparedStatement insert = connection.prepareStatement(
            "INSERT INTO payments (amount, currency, status) VALUES (?, ?, 'accepted')"
                + " RETURNING id")) {
          insert.setLong(1, payment.amount());
          insert.setString(2, payment.currency());
          try (ResultSet row = insert.executeQuery()) {
            row.next();
            return row.getLong(1);
          }
        }
      });
    } catch (SQLException e) {
      // The charge is made (and, with a key, its result stored: a retry does not charge again).
      problem(response, 503, request.getAttribute(Steps.ATTRIBUTE) != null
          ? CHARGED_NOT_RECORDED : CHARGED_NOT_RECORDED_WITHOUT_KEY);
      return;
    }
    response.setStatus(201);
    response.setHeader("Location", "/payments/" + id);
    json(response, toJson(id, payment.amount(), payment.currency(), "accepted"));
  }

  @Override
  protected void doGet(HttpServletRequest request, HttpServletResponse response)
      throws IOException {
    String info = request.getPathInfo();
    long id;
    try {
      id = Long.parseLong(info == null ? "" : info.substring(1));
    } catch (NumberFormatException e) {
      problem(response, 404, "there is no payment at this path");
      return;
    }
    String found;
    try {
      found = database.run(connection -> {
        try (PreparedStatement select = connection.prepareStatement(
            "SELECT amount, currency, status FROM payments WHERE id = ?")) {
          select.setLong(1, id);
          try (ResultSet row = select.executeQuery()) {
            return row.next()
                ? toJson(id, row.getLong(1), row.getString(2), row.getString(3)) : null;
          }
        }
      });
    } catch (SQLException e) {
      problem(response, 503, "the payments database is unavailable");
      return;
    }
    if (found == null) {
      problem(response, 404, "no payment " + id);
    } else {
      json(response, found);
    }
  }

  /**
   * A test hook's delay: 0 when {@code value} is absent, else the milliseconds it says in ASCII
   * digits (at most 18: no overflow), or -1 when it says anything else. Long.parseLong would take
   * a sign and any script's digits.
   */
  static long millis(String value) {
    if (value == null) {
      return 0;
    }
    if (value.isEmpty() || value.length() > 18) {
      return -1;
    }
    for (int i = 0; i < value.length(); i++) {
      if (value.charAt(i) < '0' || value.charAt(i) > '9') {
        return -1;
      }
    }
    return Long.parseLong(value);
  }

  static String toJson(long id, long amount, String currency, String status) {
    return "{\"id\":" + id + ",\"amount\":" + amount + ",\"currency\":\"" + currency
        + "\",\"status\":\"" + status + "\"}";
  }

  static void json(HttpServletResponse response, String json) throws IOException {
    byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
    response.setContentType("application/json");
    response.setContentLength(bytes.length);
    response.getOutputStream().write(bytes);
  }

  static void problem(HttpServletResponse response, int status, String detail) throws IOException {
    response.setStatus(status);
    byte[] bytes = ProblemJson.of(status, detail);
    response.setContentType(ProblemJson.CONTENT_TYPE);
    response.setContentLength(bytes.length);
    response.getOutputStream().write(bytes);
  }
}
