package io.idemkey.benchmarks;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The demo app ({@code java -jar demo-app.jar}) as a child process on a free port, on a database
 * given by URL. {@link #close()} stops this process only, through its own {@link Process} handle:
 * SIGTERM first (the demo stops gracefully), then SIGKILL if it has not exited.
 *
 * <p>Not thread-safe.
 */
final class DemoProcess implements AutoCloseable {

  private final Process process;
  private final int port;
  private final Path log;

  private DemoProcess(Process process, int port, Path log) {
    this.process = process;
    this.port = port;
    this.log = log;
  }

  /**
   * Starts the demo with {@code PORT} and {@code IDEMPOTENCY_JDBC_*} set, its output in {@code
   * log}, and waits until {@code GET /health} answers 200.
   *
   * @throws IOException if it does not start, or is not healthy within {@code startTimeout}
   */
  static DemoProcess start(
      Path jar, List<String> jvmOptions, String jdbcUrl, String user, String password, Path log,
      Duration startTimeout)
      throws IOException, InterruptedException {
    if (!Files.isRegularFile(jar)) {
      throw new IOException(jar + " not found: build it with mvn -B -q package -DskipTests");
    }
    int port = freePort();
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    List<String> command = new java.util.ArrayList<>();
    command.add(java.toString());
    command.addAll(jvmOptions);
    command.add("-jar");
    command.add(jar.toString());
    ProcessBuilder builder = new ProcessBuilder(command);
    Map<String, String> environment = builder.environment();
    environment.put("PORT", String.valueOf(port));
    environment.put("IDEMPOTENCY_JDBC_URL", jdbcUrl);
    environment.put("IDEMPOTENCY_JDBC_USERNAME", user);
    environment.put("IDEMPOTENCY_JDBC_PASSWORD", password);
    builder.redirectErrorStream(true).redirectOutput(log.toFile());
    DemoProcess demo = new DemoProcess(builder.start(), port, log);
    try {
      demo.awaitHealthy(startTimeout);
    } catch (IOException | InterruptedException | RuntimeException e) {
      demo.close();
      throw e;
    }
    return demo;
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      return socket.getLocalPort();
    }
  }

  private void awaitHealthy(Duration timeout) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    byte[] health =
        ("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    IOException last = null;
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IOException("the demo exited with " + process.exitValue() + " before it was"
            + " healthy; see " + log);
      }
      try (HttpConnection connection = new HttpConnection(port, 2000)) {
        if (connection.send(health).status() == 200) {
          return;
        }
      } catch (IOException e) {
        last = e;
      }
      Thread.sleep(200);
    }
    throw new IOException("the demo was not healthy after " + timeout.toSeconds() + " s; see "
        + log + (last == null ? "" : " (last error: " + last.getMessage() + ")"));
  }

  int port() {
    return port;
  }

  long pid() {
    return process.pid();
  }

  @Override
  public void close() {
    if (!process.isAlive()) {
      return;
    }
    process.destroy();
    try {
      if (!process.waitFor(15, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }
}
