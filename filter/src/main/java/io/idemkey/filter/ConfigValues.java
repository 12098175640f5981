package io.idemkey.filter;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Parsers for configuration values: durations ({@code PT30S}, {@code 500ms}, {@code 30s},
 * {@code 5m}, {@code 24h}, {@code 7d}), sizes ({@code 1048576}, {@code 512KiB}, {@code 4MiB},
 * {@code 1GiB}), booleans and comma-separated lists. Each throws {@link IllegalArgumentException}
 * saying what was expected; the caller adds the property's name. Stateless and thread-safe.
 */
final class ConfigValues {

  private static final Pattern SHORT_DURATION = Pattern.compile("(\\d+)(ms|s|m|h|d)");
  private static final Pattern SIZE = Pattern.compile("(\\d+)(B|KiB|MiB|GiB)?");

  private ConfigValues() {}

  static Duration duration(String value) {
    String text = value.trim();
    Matcher shortForm = SHORT_DURATION.matcher(text);
    try {
      if (shortForm.matches()) {
        long amount = Long.parseLong(shortForm.group(1));
        switch (shortForm.group(2)) {
          case "ms":
            return Duration.ofMillis(amount);
          case "s":
            return Duration.ofSeconds(amount);
          case "m":
            return Duration.ofMinutes(amount);
          case "h":
            return Duration.ofHours(amount);
          default:
            return Duration.ofDays(amount);
        }
      }
      return Duration.parse(text.toUpperCase(Locale.ROOT));
    } catch (DateTimeParseException | ArithmeticException | NumberFormatException e) {
      throw new IllegalArgumentException(
          "'" + value + "' is not a duration (ISO-8601 like PT30S, or 500ms, 30s, 5m, 24h, 7d)");
    }
  }

  /** {@code duration} in the largest short form that shows it exactly: 30s, 24h, 500ms. */
  static String format(Duration duration) {
    if (duration.getNano() % 1_000_000 != 0 || duration.isNegative()
        || duration.getSeconds() > Long.MAX_VALUE / 1000) {
      return duration.toString();
    }
    long millis = duration.toMillis();
    long[] units = {86_400_000, 3_600_000, 60_000, 1000};
    String[] names = {"d", "h", "m", "s"};
    for (int i = 0; i < units.length; i++) {
      if (millis != 0 && millis % units[i] == 0) {
        return millis / units[i] + names[i];
      }
    }
    return millis + "ms";
  }

  static long size(String value) {
    Matcher matcher = SIZE.matcher(value.trim());
    if (!matcher.matches()) {
      throw new IllegalArgumentException(
          "'" + value + "' is not a size (bytes, or with KiB, MiB, GiB: 512KiB, 4MiB)");
    }
    try {
      long amount = Long.parseLong(matcher.group(1));
      String unit = matcher.group(2) == null ? "B" : matcher.group(2);
      int shift = switch (unit) {
        case "KiB" -> 10;
        case "MiB" -> 20;
        case "GiB" -> 30;
        default -> 0;
      };
      if (amount > (Long.MAX_VALUE >> shift)) {
        throw new NumberFormatException();
      }
      return amount << shift;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("'" + value + "' is too large a size");
    }
  }

  static boolean bool(String value) {
    return switch (value.trim()) {
      case "true" -> true;
      case "false" -> false;
      default -> throw new IllegalArgumentException("'" + value + "' is not true or false");
    };
  }

  static int integer(String value) {
    try {
      return Integer.parseInt(value.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("'" + value + "' is not a whole number");
    }
  }

  /** The comma-separated items of {@code value}, trimmed, empty ones dropped. */
  static List<String> list(String value) {
    List<String> items = new ArrayList<>();
    for (String item : value.split(",")) {
      String trimmed = item.trim();
      if (!trimmed.isEmpty()) {
        items.add(trimmed);
      }
    }
    return items;
  }
}
