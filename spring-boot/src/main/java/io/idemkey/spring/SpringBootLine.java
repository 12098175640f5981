package io.idemkey.spring;

import io.idemkey.filter.InvalidConfigurationException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The Spring Boot lines the starter supports: 3.5.x and 4.0.x are built and tested; a later line
 * is let through (its auto-configuration contract has held so far); an older one is refused at
 * start-up, rather than leaving an application that believes it is protected and is not. Stateless.
 */
final class SpringBootLine {

  static final String SUPPORTED = "3.5.x and 4.0.x";

  private static final Pattern MAJOR_MINOR = Pattern.compile("(\\d+)\\.(\\d+)(?:\\D.*)?");

  private SpringBootLine() {}

  /**
   * Checks the running Spring Boot's version.
   *
   * @param version Spring Boot's version, or null when it cannot be told (classes not from Boot's
   *     jars, as in some IDE runs): then nothing is checked
   * @throws InvalidConfigurationException if the version is older than 3.5
   */
  static void requireSupported(String version) {
    if (version == null) {
      return;
    }
    Matcher matcher = MAJOR_MINOR.matcher(version);
    if (!matcher.matches()) {
      return;
    }
    int major = Integer.parseInt(matcher.group(1));
    int minor = Integer.parseInt(matcher.group(2));
    if (major < 3 || (major == 3 && minor < 5)) {
      throw new InvalidConfigurationException("the idemkey starter supports Spring Boot "
          + SUPPORTED + "; this application runs Spring Boot " + version
          + ": upgrade Spring Boot, or register io.idemkey.filter.IdempotencyFilter yourself");
    }
  }
}
