package io.idemkey.frameworks;

import io.idemkey.filter.ServletContainer;
import io.idemkey.filter.TomcatContainer;

class JerseyOnTomcatTest extends JerseyContract {
  @Override
  ServletContainer newContainer() {
    return new TomcatContainer();
  }
}
