package io.idemkey.filter;

import java.util.List;

/**
 * Servlet-style path patterns (SPEC §1): {@code /exact}, {@code /prefix/*} (which also matches
 * {@code /prefix}), {@code *.ext}, and {@code /*} for every path. Immutable and thread-safe.
 */
final class PathPatterns {

  private final List<String> patterns;

  /**
   * @throws IllegalArgumentException if a pattern is not one of the servlet forms
   */
  PathPatterns(List<String> patterns) {
    for (String pattern : patterns) {
      boolean valid =
          pattern.startsWith("/")
              ? pattern.indexOf('*') < 0 || (pattern.endsWith("/*") && pattern.indexOf('*') == pattern.length() - 1)
              : pattern.startsWith("*.") && pattern.length() > 2 && pattern.indexOf('/') < 0
                  && pattern.lastIndexOf('*') == 0;
      if (!valid) {
        throw new IllegalArgumentException(
            "'" + pattern + "' is not a servlet path pattern (/exact, /prefix/*, *.ext)");
      }
    }
    this.patterns = List.copyOf(patterns);
  }

  boolean matches(String path) {
    for (String pattern : patterns) {
      if (pattern.endsWith("/*")) {
        String prefix = pattern.substring(0, pattern.length() - 2);
        if (prefix.isEmpty()
            || path.equals(prefix)
            || (path.startsWith(prefix) && path.charAt(prefix.length()) == '/')) {
          return true;
        }
      } else if (pattern.startsWith("*.")) {
        if (path.endsWith(pattern.substring(1))) {
          return true;
        }
      } else if (path.equals(pattern)) {
        return true;
      }
    }
    return false;
  }

  @Override
  public String toString() {
    return String.join(",", patterns);
  }
}
