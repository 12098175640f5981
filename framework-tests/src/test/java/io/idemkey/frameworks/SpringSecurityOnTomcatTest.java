package io.idemkey.frameworks;

import io.idemkey.filter.TomcatContainer;
import io.idemkey.filter.ServletContainer;

class SpringSecurityOnTomcatTest extends SpringSecurityContract {
  @Override
  ServletContainer newContainer() {
    return new TomcatContainer();
  }
}
