package io.idemkey.frameworks;

import io.idemkey.filter.JettyContainer;
import io.idemkey.filter.ServletContainer;

class SpringMvcOnJettyTest extends SpringMvcContract {
  @Override
  ServletContainer newContainer() {
    return new JettyContainer();
  }
}
