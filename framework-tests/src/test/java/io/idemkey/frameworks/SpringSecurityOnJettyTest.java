package io.idemkey.frameworks;

import io.idemkey.filter.JettyContainer;
import io.idemkey.filter.ServletContainer;

class SpringSecurityOnJettyTest extends SpringSecurityContract {
  @Override
  ServletContainer newContainer() {
    return new JettyContainer();
  }
}
