package io.idemkey.frameworks;

import io.idemkey.filter.ServletContainer;
import io.idemkey.filter.TomcatContainer;

class SpringMvcOnTomcatTest extends SpringMvcContract {
  @Override
  ServletContainer newContainer() {
    return new TomcatContainer();
  }
}
