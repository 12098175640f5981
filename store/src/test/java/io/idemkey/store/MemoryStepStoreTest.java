package io.idemkey.store;

class MemoryStepStoreTest extends StepStoreContract {

  @Override
  StoreBuilder freshStore() {
    return StoreBuilder.memory();
  }
}
