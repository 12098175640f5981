package io.idemkey.frameworks;

import io.idemkey.filter.JettyContainer;
import io.idemkey.filter.ServletContainer;

class JerseyOnJettyTest extends JerseyContract {
  @Override
  ServletContainer newContainer() {
    return new JettyContainer();
  }
}
